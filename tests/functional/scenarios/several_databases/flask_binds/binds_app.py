"""A Flask-SQLAlchemy app with a second database in SQLALCHEMY_BINDS: its
reports live in ``analytics``, with a table named ``audit`` in each."""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Order(db.Model):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str] = mapped_column(String(50))


class Audit(db.Model):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    who: Mapped[str] = mapped_column(String(50))


class Report(db.Model):
    __bind_key__ = "analytics"
    __tablename__ = "report"
    id: Mapped[int] = mapped_column(primary_key=True)
    line: Mapped[str] = mapped_column(String(50))


class ReportAudit(db.Model):
    __bind_key__ = "analytics"
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    what: Mapped[str] = mapped_column(String(50))


analytics_metadata = db.metadatas["analytics"]


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql://shop@shop.invalid/shop"
    app.config["SQLALCHEMY_BINDS"] = {"analytics": os.environ.get("BINDS_ANALYTICS", "sqlite://")}
    db.init_app(app)
    return app


def sell(item):
    db.session.add(Order(item=item))
    db.session.add(Audit(who="shop"))
    db.session.add(Report(line=f"sold {item}"))
    db.session.add(ReportAudit(what="report"))
    db.session.commit()


def counts():
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Order, Audit, Report, ReportAudit))
