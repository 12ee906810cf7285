import unittest

from bookshop import create_app, db
from bookshop.models import Book, Order
from sqlalchemy import func, select

from nose2_sqltx import DatabaseTest
from tests.factories import BookFactory, OrderFactory


class ShopTest(DatabaseTest, unittest.TestCase):
    def setUp(self):
        # A new app per test, as most Flask suites do: its engine is made now,
        # during the run, and redirected all the same.
        self.app = create_app({"TESTING": True})
        self.client = self.app.test_client()
        context = self.app.app_context()
        context.push()
        self.addCleanup(context.pop)

    def count(self, model):
        return self.session.scalar(select(func.count()).select_from(model))


class TestBooks(ShopTest):
    def test_add_book_through_the_api(self):
        response = self.client.post("/books", json={"title": "Dune", "price_cents": 1999, "stock": 2})
        self.assertEqual(response.status_code, 201)
        # The view committed; the test's own session sees the row.
        self.assertEqual(self.session.get(Book, response.json["id"]).title, "Dune")

    def test_every_test_starts_empty(self):
        self.assertEqual(self.client.get("/books").json, [])
        self.assertEqual(self.count(Book), 0)

    def test_factories_commit_into_the_test(self):
        BookFactory.create_batch(3)
        self.assertEqual(len(self.client.get("/books").json), 3)

    def test_listing_books_is_one_query(self):
        BookFactory.create_batch(5)
        with self.assertNumQueries(1):
            self.client.get("/books")

    def test_the_apps_engine_is_a_real_engine(self):
        health = self.client.get("/health").json
        self.assertEqual(health["tables"], ["book", "book_order"])
        self.assertEqual(health["dialect"], "postgresql")
        self.assertNotIn("bookshop.internal", str(db.engine.url))


class TestOrders(ShopTest):
    @classmethod
    def setUpTestData(cls):
        # Once for the class, through the app's session; every test sees it.
        with create_app().app_context():
            cls.book_id = BookFactory(title="Class data", stock=2).id

    def test_order_takes_stock(self):
        response = self.client.post("/orders", json={"book_id": self.book_id, "quantity": 2})
        self.assertEqual(response.status_code, 201, response.json)
        self.assertEqual(response.json["stock"], 0)
        self.assertEqual(self.count(Order), 1)

    def test_stock_is_back_for_the_next_test(self):
        self.assertEqual(self.session.get(Book, self.book_id).stock, 2)
        response = self.client.post("/orders", json={"book_id": self.book_id, "quantity": 3})
        self.assertEqual(response.status_code, 409)

    def test_order_factory(self):
        order = OrderFactory(quantity=2)
        self.assertEqual(order.book.stock, 3)
        self.assertEqual(self.count(Order), 1)
        self.assertEqual(self.count(Book), 2)  # the class's book and the factory's
