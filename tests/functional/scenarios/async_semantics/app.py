"""The app: async request handlers and sync CLI code over one database.

Its engines are made from the run's URL (the run redirects them, so they are
never connected to on their own); the sync one with the sync driver of the
same database, as an app's CLI would have it."""

import asyncio
import os

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_scoped_session, async_sessionmaker, create_async_engine

_url = make_url(os.environ["SQLTX_DSN"])
_SYNC = {"postgresql": "psycopg2", "mysql": "pymysql", "sqlite": "pysqlite"}

async_engine = create_async_engine(_url)
sync_engine = create_engine(_url.set(drivername=f"{_url.get_backend_name()}+{_SYNC[_url.get_backend_name()]}"))
AsyncSessionLocal = async_sessionmaker(async_engine, expire_on_commit=False)
scoped = async_scoped_session(async_sessionmaker(async_engine), scopefunc=asyncio.current_task)
