"""SafeEdit's data: the record format every layer reads (safeedit.py) and the bundled sample of 30 test records (CC BY-NC-SA 4.0, see README.md here)."""
