"""Async tests where things go wrong: each failure is the test's own, with
the plugin's message; the next test starts clean; nothing is left."""

import os
import time
import unittest

from async_engines import engine_of_its_own
from scenario_models import Item, items, references
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from nose2_sqltx import AsyncDatabaseTest, unwatched

URL = make_url(os.environ["SQLTX_DSN"])
BACKEND = URL.get_backend_name()


def elsewhere():
    """An async engine on another database of the same server (SQLite: another file)."""
    if BACKEND == "sqlite":
        return create_async_engine(f"{URL.drivername}:///{os.environ['EDGES_TMP']}/other.db")
    return engine_of_its_own(URL.set(database="postgres" if BACKEND == "postgresql" else "mysql"))


async def current_items(test):
    return await test.connection.run_sync(items)


class TestAsyncEdges(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    @classmethod
    async def asyncSetUpTestData(cls):
        cls.session.add(Item(name="class"))
        await cls.session.commit()

    async def asyncSetUp(self):
        self.assertEqual(await current_items(self), ["class"], "class data lost or test data leaked")
        self.assertEqual(await self.connection.run_sync(references), 2, "fixture data lost")

    async def test_1_raw_commit(self):
        await self.connection.execute(insert(Item).values(name="raw"))
        await self.connection.execute(text("COMMIT"))

    async def test_2_after_commit(self):
        pass

    async def test_3_leak(self):
        engine = elsewhere()
        try:
            async with engine.connect() as conn:
                await conn.execute(text("CREATE TABLE sqltx_async_leak (id INTEGER)"))
        finally:
            await engine.dispose()

    async def test_4_statement_timeout(self):
        if BACKEND == "sqlite":
            self.skipTest("SQLite has no statement timeout")  # the functional test checks which targets skip
        sleep = "SELECT pg_sleep(5)" if BACKEND == "postgresql" else "SELECT SLEEP(5)"
        started = time.monotonic()
        try:
            await self.connection.execute(text(sleep))
        finally:
            print(f"statement ended after {time.monotonic() - started:.2f}s")

    async def test_5_other_connection_waits_on_the_runs_lock(self):
        if BACKEND == "sqlite":
            self.skipTest("SQLite: another file")
        # The test transaction holds a lock; another (deliberate, unwatched: not
        # handed the run's connection) async engine on the run's database waits for it.
        if BACKEND == "postgresql":
            hold, wait = "SELECT pg_advisory_xact_lock(424242)", "SELECT pg_advisory_lock(424242)"
        else:  # the run's tables are committed on MySQL: another connection waits for the row
            hold = "UPDATE sqltx_item SET name = 'mine' WHERE name = 'class'"
            wait = "UPDATE sqltx_item SET name = 'theirs' WHERE name = 'class'"
        await self.connection.execute(text(hold))
        other = engine_of_its_own(self.engine.url)
        unwatched(other.sync_engine)
        started = time.monotonic()
        try:
            async with other.connect() as conn:
                await conn.execute(text(wait))
        finally:
            print(f"other connection waited {time.monotonic() - started:.2f}s")
            await other.dispose()

    async def test_6_still_usable(self):
        self.assertEqual(await current_items(self), ["class"])
