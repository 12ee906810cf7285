"""An app's engines, sync and async, on the run's database (never connected to)."""

import os

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

_url = make_url(os.environ["SQLTX_DSN"])
sync_engine = create_engine(_url.set(drivername="postgresql+psycopg2"))
async_engine = create_async_engine(_url.set(drivername="postgresql+asyncpg"))
