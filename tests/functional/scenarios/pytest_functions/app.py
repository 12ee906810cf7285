"""The app under test: an engine of its own, made at import, as apps do."""

import os

from sqlalchemy import create_engine

engine = create_engine(os.environ["SQLTX_DSN"])
