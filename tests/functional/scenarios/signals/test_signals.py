"""One test that holds the run open until a signal comes: in Python
(``SQLTX_BLOCK=sleep``), in a long statement (``query``) or in a wait for a
lock another connection holds (``lock``). The marker file is written just
before it blocks. ``SQLTX_ASYNC=1``: the test is an async one (sleep or query)."""

import asyncio
import os
import pathlib
import time
import unittest

from scenario_models import Item
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from nose2_sqltx import AsyncDatabaseTest, DatabaseTest, unwatched

#: per database: a statement that runs for a minute, and one that waits for the lock below
LONG = {
    "postgresql": "SELECT pg_sleep(60)",
    "mysql": "SELECT SLEEP(60)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
}
WAIT = {"postgresql": "SELECT pg_advisory_lock(4242)", "mysql": "SELECT GET_LOCK('sqltx_signals', 60)"}


class TestSlow(DatabaseTest, unittest.TestCase):  # SQLTX_ASYNC=1: the async one below
    def test_waits(self):
        self.session.add(Item(name="before the signal"))
        self.session.commit()
        block = os.environ.get("SQLTX_BLOCK", "sleep")
        kind = self.engine.dialect.name
        if block == "lock":
            other = unwatched(create_engine(os.environ["SQLTX_DSN"], poolclass=NullPool)).connect()
            other.exec_driver_sql(WAIT[kind])  # held by another connection until this process ends
        pathlib.Path(os.environ["SQLTX_MARKER"]).write_text("ready")
        if block == "sleep":
            time.sleep(60)
        else:
            self.connection.exec_driver_sql(LONG[kind] if block == "query" else WAIT[kind])


if os.environ.get("SQLTX_ASYNC"):
    class TestSlow(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):  # type: ignore[no-redef]
        async def test_waits(self):
            self.session.add(Item(name="before the signal"))
            await self.session.commit()
            pathlib.Path(os.environ["SQLTX_MARKER"]).write_text("ready")
            if os.environ.get("SQLTX_BLOCK", "sleep") == "sleep":
                await asyncio.sleep(60)
            else:
                await self.connection.exec_driver_sql(LONG[self.engine.dialect.name])
