"""An app that sends mail only once the order is committed: a callback
registered for its session's commit with SQLAlchemy's after_commit event
(once=True), the SQLAlchemy counterpart of Django's transaction.on_commit."""

import os

from scenario_models import Item
from sqlalchemy import create_engine, event
from sqlalchemy.orm import sessionmaker

engine = create_engine(os.environ.get("SQLTX_DSN", "postgresql+psycopg2://app@app-db.invalid/app"))
Session = sessionmaker(engine)
outbox = []


def place_order(name, *, fail=False):
    with Session() as session:
        session.add(Item(name=name))
        event.listen(session, "after_commit", lambda _session: outbox.append(f"mail for {name}"), once=True)
        if fail:
            session.rollback()  # the order is dropped: no mail
            return
        session.commit()
