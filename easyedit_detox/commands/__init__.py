"""The glue from files to functions, one module per CLI command: each loads what its command names, checks it, and calls the layers below."""
