from flask import Blueprint, abort, jsonify, request
from sqlalchemy import inspect, select

from . import db
from .models import Book, Order

bp = Blueprint("shop", __name__)


@bp.post("/books")
def add_book():
    data = request.get_json()
    book = Book(title=data["title"], price_cents=data["price_cents"], stock=data.get("stock", 0))
    db.session.add(book)
    db.session.commit()
    return jsonify(id=book.id), 201


@bp.get("/books")
def list_books():
    books = db.session.scalars(select(Book).order_by(Book.title)).all()
    return jsonify([{"id": b.id, "title": b.title, "stock": b.stock} for b in books])


@bp.post("/orders")
def place_order():
    data = request.get_json()
    book = db.session.get(Book, data["book_id"]) or abort(404)
    if book.stock < data["quantity"]:
        return jsonify(error="not enough stock"), 409
    book.stock -= data["quantity"]
    db.session.add(Order(book=book, quantity=data["quantity"]))
    db.session.commit()
    return jsonify(stock=book.stock), 201


@bp.get("/health")
def health():
    # Reflection through the app's own engine: it is a real Engine in tests too.
    return jsonify(tables=sorted(inspect(db.engine).get_table_names()), dialect=db.engine.dialect.name)
