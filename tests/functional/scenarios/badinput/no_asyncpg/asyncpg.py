# Put first on sys.path, this stands for asyncpg not being installed.
raise ImportError("No module named 'asyncpg'")
