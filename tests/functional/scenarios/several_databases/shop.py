"""An app over two databases: orders in the shop's, events in analytics'.

Each database has a table named ``audit``, with different columns: a run
that put both in one database would make one and fail on the other's column.
The one Session factory binds each model to its database's engine.
"""

import os

from sqlalchemy import ForeignKey, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class AnalyticsBase(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    item: Mapped[str] = mapped_column(String(50))


class Audit(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    who: Mapped[str] = mapped_column(String(50))


class Event(AnalyticsBase):
    __tablename__ = "event"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))


class AnalyticsAudit(AnalyticsBase):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    what: Mapped[str] = mapped_column(String(50))


# Never used as such in the tests: the run redirects both into its transactions.
engine = create_engine(os.environ.get("SHOP_DSN", "postgresql+psycopg2://shop@shop.invalid/shop"))
analytics_engine = create_engine(os.environ.get("ANALYTICS_DSN", "postgresql+psycopg2://shop@analytics.invalid/a"))
Session = sessionmaker(binds={Base: engine, AnalyticsBase: analytics_engine})


def seed(session, analytics, customer_id=1, name="ada"):
    """A class's data: a customer in the shop's database, an event in analytics'."""
    session.add(Customer(id=customer_id, name=name))
    session.commit()
    analytics.add(Event(kind="seed"))
    analytics.commit()


def place_order(customer_id, item):
    """One unit of work over both databases, committed."""
    with Session() as session:
        session.add(Order(customer_id=customer_id, item=item))
        session.add(Audit(who=f"customer {customer_id}"))
        session.add(Event(kind=f"order {item}"))
        session.add(AnalyticsAudit(what=f"order {item}"))
        session.commit()


def abandoned_order(customer_id, item):
    """Written to both, then rolled back."""
    with Session() as session:
        session.add(Order(customer_id=customer_id, item=item))
        session.add(Event(kind=f"order {item}"))
        session.flush()
        session.rollback()


def counts():
    """(orders, audit rows, events, analytics audit rows), as the app sees them."""
    with Session() as session:
        return tuple(session.scalar(select(func.count()).select_from(model))
                     for model in (Order, Audit, Event, AnalyticsAudit))
