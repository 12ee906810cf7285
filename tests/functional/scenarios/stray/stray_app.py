"""The app: an engine of its own (redirected into the test transaction)."""

import os

from scenario_models import Item, items
from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session

engine = create_engine(os.environ.get("SQLTX_DSN", "postgresql+psycopg2://app@app-db.invalid/app"))


def add_item(name):
    with Session(engine) as session:
        session.execute(insert(Item).values(name=name))
        session.commit()


def item_names():
    with engine.connect() as conn:
        return items(conn)
