"""The app: an engine of its own, and a background writer."""

import os

from scenario_models import Item
from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session

engine = create_engine(os.environ.get("SQLTX_DSN", "postgresql+psycopg2://app@app-db.invalid/app"))


def add_item(name):
    with Session(engine) as session:
        session.execute(insert(Item).values(name=name))
        session.commit()
