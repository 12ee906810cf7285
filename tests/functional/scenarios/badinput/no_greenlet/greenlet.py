# Put first on sys.path, this stands for greenlet not being installed.
raise ImportError("No module named 'greenlet'")
