"""An async app with sync CLI code, and an HTTP endpoint (FastAPI) over the same database."""

import os

from fastapi import FastAPI
from scenario_models import Item
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

_url = make_url(os.environ["SQLTX_DSN"])
_SYNC = {"postgresql": "psycopg2", "mysql": "pymysql", "sqlite": "pysqlite"}

async_engine = create_async_engine(_url)
sync_engine = create_engine(_url.set(drivername=f"{_url.get_backend_name()}+{_SYNC[_url.get_backend_name()]}"))
Session = async_sessionmaker(async_engine)


def count_items_cli() -> int:
    """The CLI's sync code."""
    with sync_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Item)).scalar_one()


api = FastAPI()


@api.get("/items/count")
async def items_count() -> dict[str, int]:
    async with Session() as session:
        return {"count": (await session.execute(select(func.count()).select_from(Item))).scalar_one()}
