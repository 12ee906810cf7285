import factory
from bookshop import db
from bookshop.models import Book, Order
from factory.alchemy import SQLAlchemyModelFactory


class BookFactory(SQLAlchemyModelFactory):
    class Meta:
        model = Book
        # The app's own scoped session: nose2-sqltx redirects it, so "commit"
        # commits inside the test transaction and is undone after the test.
        sqlalchemy_session = db.session
        sqlalchemy_session_persistence = "commit"

    title = factory.Sequence(lambda n: f"Book {n}")
    price_cents = 1500
    stock = 3


class OrderFactory(SQLAlchemyModelFactory):
    class Meta:
        model = Order
        sqlalchemy_session = db.session
        sqlalchemy_session_persistence = "commit"

    book = factory.SubFactory(BookFactory)
    quantity = 1
