"""Two databases, async: AsyncDatabaseTest's scopes on both (async handles),
class data in both, the app's async_sessionmaker over both, and a raw COMMIT
in one that rebuilds both with the class data once in each."""

import unittest

from async_shop import counts, place_order
from shop import Customer, Event
from sqlalchemy import select, text

from nose2_sqltx import AsyncDatabaseTest


class TestAsyncTwo(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    @classmethod
    async def asyncSetUpTestData(cls):
        cls.session.add(Customer(id=1, name="ada"))
        await cls.session.commit()
        analytics = cls.databases["analytics"].async_session
        analytics.add(Event(kind="seed"))
        await analytics.commit()

    async def asyncSetUp(self):
        self.assertEqual(await counts(), (0, 0, 1, 0), "class data lost or doubled, or a test's rows leaked")

    async def test_a_commit_reaches_both(self):
        await place_order(1, "book")
        self.assertEqual(await counts(), (1, 1, 2, 1))
        analytics = self.databases["analytics"].async_session
        self.assertEqual((await analytics.scalars(select(Event.kind).order_by(Event.id))).all(), ["seed", "order book"])

    async def test_b_a_raw_commit_in_analytics(self):
        await self.databases["analytics"].async_connection.execute(text("INSERT INTO event (kind) VALUES ('raw')"))
        await self.databases["analytics"].async_connection.execute(text("COMMIT"))

    async def test_c_after_it(self):
        self.assertEqual((await self.session.scalars(select(Customer.name))).all(), ["ada"])
