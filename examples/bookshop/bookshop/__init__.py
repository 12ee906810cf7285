"""A small Flask-SQLAlchemy 3 app: a bookshop's stock and orders, as JSON.

Its code knows nothing about tests: the views use ``db.session`` and
commit, and ``create_app()`` reads the database URL from the environment.
In the test run, nose2-sqltx points ``db``'s engines at the test
transaction (``sessions = bookshop:db`` in unittest.cfg), so that URL is
never connected to.
"""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def create_app(config=None):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "BOOKSHOP_DATABASE_URL", "postgresql+psycopg2://bookshop@db.bookshop.internal/bookshop")
    app.config.update(config or {})
    db.init_app(app)

    from . import views

    app.register_blueprint(views.bp)
    return app

from . import models  # noqa: E402,F401  (the tables belong to db.metadata once imported)
