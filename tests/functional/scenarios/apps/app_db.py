"""An app's data layer as many apps write it: module-level engines and
session factories, made at import time from the app's own setting."""

import os

from scenario_models import Item
from sqlalchemy import create_engine, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, scoped_session, sessionmaker

# The app's own setting: in the test run nose2-sqltx redirects this engine,
# so the URL (with a password in it) is never connected to.
APP_URL = "postgresql+psycopg2://app:s3cret-pw@app-db.invalid:5432/app"
engine = create_engine(APP_URL)
SessionLocal = sessionmaker(bind=engine)
# An unbound factory the app binds to nothing: redirected too.
UnboundSession = sessionmaker()
scoped = scoped_session(sessionmaker(bind=engine))
# Not named under [sqltx], and on another database of the server (an engine
# on the run's own database would join the test transaction): a write
# through it is a leak.
reporting_engine = create_engine(make_url(os.environ["SQLTX_DSN"]).set(database="postgres"))


def add_item(name):
    """App code: its own session, its own commit."""
    with SessionLocal() as session:
        session.add(Item(name=name))
        session.commit()


def add_item_raw(name):
    with engine.begin() as conn:
        conn.execute(insert(Item).values(name=name))


def item_names():
    with Session(engine) as session:
        return session.scalars(select(Item.name).order_by(Item.name)).all()


def log_to_reporting(name):
    with reporting_engine.begin() as conn:
        conn.execute(insert(Item).values(name=name))


def log_to_reporting_quietly(name):
    """Swallows its errors, as background reporting code often does."""
    try:
        log_to_reporting(name)
    except Exception:
        pass
