# Put first on sys.path, this stands for psycopg 3 not being installed.
raise ImportError("No module named 'psycopg'")
