import unittest

import httpx
from shop.api import app
from shop.models import Customer, Order, Product
from sqlalchemy import func, select

from nose2_sqltx import AsyncDatabaseTest


class ApiTest(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        # The app runs in the test's task, on its loop; its endpoints' sessions come
        # from the app's async_sessionmaker, redirected into the test.
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop")
        self.addAsyncCleanup(self.client.aclose)

    async def count(self, model):
        return await self.session.scalar(select(func.count()).select_from(model))


class TestCustomers(ApiTest):
    async def test_add_customer_through_the_api(self):
        response = await self.client.post("/customers", json={"email": "ada@example.com"})
        self.assertEqual(response.status_code, 201)
        # The endpoint committed; the test's own session sees the row.
        customer = await self.session.get(Customer, response.json()["id"])
        self.assertEqual(customer.email, "ada@example.com")

    async def test_every_test_starts_empty(self):
        self.assertEqual(await self.count(Customer), 0)

    async def test_a_taken_email_is_409_and_the_first_stays(self):
        await self.client.post("/customers", json={"email": "ada@example.com"})
        response = await self.client.post("/customers", json={"email": "ada@example.com"})
        self.assertEqual(response.status_code, 409)
        self.assertEqual(await self.count(Customer), 1)


class TestOrders(ApiTest):
    @classmethod
    async def asyncSetUpTestData(cls):
        # Once for the class; every test sees it, and its own copy of cls.lamp.
        cls.ada = Customer(email="ada@example.com")
        cls.lamp = Product(name="lamp", price_cents=2500, stock=2)
        cls.session.add_all([cls.ada, cls.lamp])
        await cls.session.commit()

    async def test_order_takes_stock(self):
        response = await self.client.post("/orders", json={"customer_id": self.ada.id, "product_id": self.lamp.id,
                                                           "quantity": 2})
        self.assertEqual(response.status_code, 201)
        await self.session.refresh(self.lamp)
        self.assertEqual(self.lamp.stock, 0)

    async def test_class_data_is_as_made(self):
        self.assertEqual(self.lamp.stock, 2)  # the previous test's order is gone
        self.assertEqual(await self.count(Order), 0)

    async def test_not_enough_stock_changes_nothing(self):
        response = await self.client.post("/orders", json={"customer_id": self.ada.id, "product_id": self.lamp.id,
                                                           "quantity": 3})
        self.assertEqual(response.status_code, 409)
        await self.session.refresh(self.lamp)
        self.assertEqual(self.lamp.stock, 2)
        self.assertEqual(await self.count(Order), 0)

    async def test_listing_orders_is_one_query(self):
        for _ in range(3):
            await self.client.post("/orders", json={"customer_id": self.ada.id, "product_id": self.lamp.id,
                                                    "quantity": 0})
        async with self.assertNumQueries(1):
            response = await self.client.get(f"/customers/{self.ada.id}/orders")
        self.assertEqual([order["product"] for order in response.json()], ["lamp"] * 3)
