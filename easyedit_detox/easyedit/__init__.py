"""The boundary with the libraries: easyeditor (imported in one place, upstream.py), the GGUF model and checkpoint loading."""
