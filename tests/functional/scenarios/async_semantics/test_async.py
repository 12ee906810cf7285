"""Async app code inside AsyncDatabaseTest: production semantics inside the
test, nothing after it; a sync DatabaseTest class in the same run."""

import asyncio
import os
import time
import unittest

import app
from models import Customer, Role
from sqlalchemy import func, insert, select, text

from nose2_sqltx import AsyncDatabaseTest, DatabaseTest, real_commits

#: SQLite in memory lives in the run's connection only: no real commits there
IN_MEMORY = os.environ["SQLTX_DSN"].startswith("sqlite") and os.environ["SQLTX_DSN"].endswith("://")
#: a statement that takes five seconds, where the database has one
SLEEP = {"postgresql": "SELECT pg_sleep(5)", "mysql": "SELECT SLEEP(5)"}.get(os.environ["SQLTX_DSN"].split("+")[0])

def adapter_autocommit(raw, on):
    """Each async adapter's own way of switching autocommit on and off."""
    if callable(getattr(raw, "autocommit", None)):  # aiomysql, asyncmy
        raw.autocommit(on)
    elif os.environ["SQLTX_DSN"].startswith("sqlite"):  # aiosqlite, as sqlite3
        raw.isolation_level = None if on else ""
    else:  # asyncpg, psycopg
        raw.autocommit = on


async def count(conn, model=Customer):
    return (await conn.execute(select(func.count()).select_from(model))).scalar_one()


class TestAsyncCommitPaths(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):  # no super(): the mixin does not need it
        self.assertEqual(await count(self.session), 0, "a previous test leaked rows")

    async def test_handles_are_async(self):
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

        self.assertIsInstance(self.session, AsyncSession)
        self.assertIsInstance(self.connection, AsyncConnection)
        self.assertIsInstance(self.engine, AsyncEngine)
        self.assertEqual(await count(self.connection, Role), 2)

    async def test_session_commit_and_rollback(self):
        self.session.add(Customer(name="a"))
        await self.session.commit()
        self.session.add(Customer(name="b"))
        await self.session.rollback()
        self.assertEqual(await count(self.session), 1)

    async def test_connection_commit(self):
        await self.connection.execute(insert(Customer).values(name="c"))
        await self.connection.commit()
        await self.connection.rollback()
        self.assertEqual(await count(self.connection), 1)

    async def test_engine_begin(self):
        async with self.engine.begin() as conn:
            await conn.execute(insert(Customer).values(name="d"))
        async with self.engine.connect() as conn:
            self.assertEqual(await count(conn), 1)

    async def test_begin_nested(self):
        self.session.add(Customer(name="outer"))
        nested = await self.session.begin_nested()
        self.session.add(Customer(name="inner"))
        await nested.rollback()
        async with self.session.begin_nested():
            self.session.add(Customer(name="kept"))
        await self.session.commit()
        names = (await self.session.scalars(select(Customer.name).order_by(Customer.name))).all()
        self.assertEqual(names, ["kept", "outer"])

    async def test_autocommit(self):
        # AUTOCOMMIT is emulated inside the test: each statement kept, a rollback undoes nothing
        conn = await self.engine.connect()
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(insert(Customer).values(name="j"))
        await conn.rollback()
        await conn.close()
        self.assertEqual(await count(self.connection), 1)

    async def test_serializable_ignored(self):
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="SERIALIZABLE")
            await conn.execute(insert(Customer).values(name="k"))
            await conn.commit()
        self.assertEqual(await count(self.connection), 1)
        self.assertEqual(await count(self.connection, Role), 2, "a setting ended the run's transaction")

    async def test_the_adapters_own_autocommit(self):
        def raw_work(sync_conn):
            raw = sync_conn.connection.dbapi_connection  # SQLAlchemy's adapter of the driver
            adapter_autocommit(raw, True)
            cur = raw.cursor()
            cur.execute("INSERT INTO sqltx_customer (name) VALUES ('r')")
            raw.rollback()  # autocommit: nothing to undo
            adapter_autocommit(raw, False)
            cur.execute("INSERT INTO sqltx_customer (name) VALUES ('s')")
            raw.rollback()

        async with self.engine.connect() as conn:
            await conn.run_sync(raw_work)
        self.assertEqual(await count(self.connection), 1)
        self.assertEqual(await count(self.connection, Role), 2, "a driver call ended the run's transaction")

    async def test_app_session_closed_without_commit_undoes_its_work(self):
        async with app.AsyncSessionLocal() as session:
            session.add(Customer(name="e"))
            await session.flush()
        self.assertEqual(await count(self.session), 0)

    async def test_app_sessionmaker_commit_seen_by_test_session(self):
        async with app.AsyncSessionLocal() as session:
            session.add(Customer(name="f"))
            await session.commit()
        self.assertEqual(await count(self.session), 1)

    async def test_async_scoped_session(self):
        app.scoped.add(Customer(name="g"))
        await app.scoped.commit()
        await app.scoped.remove()
        self.assertEqual(await count(self.session), 1)

    async def test_sync_engine_of_the_app_in_the_same_test(self):
        self.session.add(Customer(name="h"))
        await self.session.commit()
        with app.sync_engine.connect() as conn:  # the CLI's code, called from a handler
            self.assertEqual(conn.execute(select(func.count()).select_from(Customer)).scalar_one(), 1)

    if not IN_MEMORY:  # each sqlite:// engine is a database of its own, as in production
        async def test_engine_made_during_the_test_joins_the_transaction(self):
            from sqlalchemy.ext.asyncio import create_async_engine

            engine = create_async_engine(self.engine.url)  # an app factory's, made late
            try:
                async with engine.begin() as conn:
                    await conn.execute(insert(Customer).values(name="late"))
                self.assertEqual(await count(self.session), 1)
            finally:
                await engine.dispose()

    if SLEEP is not None:
        async def test_a_cancelled_await_is_as_in_production(self):
            started = time.monotonic()
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(self.session.execute(text(SLEEP)), timeout=0.3)
            self.assertLess(time.monotonic() - started, 2.5)
            await self.session.rollback()  # as in production: the session goes on
            self.session.add(Customer(name="after"))
            await self.session.commit()
            self.assertEqual(await count(self.session), 1)

    async def test_concurrent_tasks(self):
        async def add(name):
            async with app.AsyncSessionLocal() as session:
                session.add(Customer(name=name))
                await session.commit()

        await asyncio.gather(*(add(f"t{i}") for i in range(5)))
        self.assertEqual(await count(self.session), 5)

    async def test_assert_num_queries(self):
        async with self.assertNumQueries(1):
            await self.session.execute(select(Customer))
        with self.assertRaises(AssertionError) as caught:
            async with self.assertNumQueries(0):
                await self.session.execute(text("SELECT 1"))
        self.assertIn("1 queries sent, 0 expected", str(caught.exception))
        self.assertEqual(await self.assertNumQueries(1, self.session.execute, select(Role)) is not None, True)

    async def test_queries_log(self):
        await self.session.execute(select(Role).where(Role.id == 1))
        self.assertTrue(any("sqltx_role" in sql for sql in self.queries), self.queries)


class TestAsyncClassData(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    @classmethod
    async def asyncSetUpTestData(cls):
        cls.ada = Customer(name="ada", role_id=1)
        cls.session.add(cls.ada)
        await cls.session.commit()

    async def test_1_changes_its_copy(self):
        self.assertEqual(self.ada.name, "ada")
        self.ada.name = "changed"
        await self.session.commit()
        self.assertEqual(await count(self.session), 1)

    async def test_2_class_data_as_made(self):
        found = await self.session.get(Customer, self.ada.id)
        self.assertEqual(found.name, "ada")
        self.assertIs(found, self.ada)  # the copy is attached to the test's session


class TestAsyncRealCommits(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    if not IN_MEMORY:
        @real_commits
        async def test_other_connections_see_committed_rows(self):
            async with self.engine.connect() as writer, self.engine.connect() as reader:
                await writer.execute(insert(Customer).values(name="real"))
                await writer.commit()
                self.assertEqual(await count(reader), 1)

    async def test_then_isolated_again(self):
        self.assertEqual(await count(self.session), 0)
        self.assertEqual(await count(self.session, Role), 2)


class TestSyncClassInTheSameRun(DatabaseTest, unittest.TestCase):
    def test_1_sync_handles_on_the_async_driver(self):
        self.assertEqual(self.session.scalar(select(func.count()).select_from(Role)), 2)
        self.session.add(Customer(name="sync"))
        self.session.commit()
        self.assertEqual(self.session.scalar(select(func.count()).select_from(Customer)), 1)

    def test_2_isolated(self):
        self.assertEqual(self.session.scalar(select(func.count()).select_from(Customer)), 0)


class TestZLast(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    async def test_nothing_left(self):
        self.assertEqual(await count(self.session), 0)
        self.assertEqual(await count(self.session, Role), 2)
