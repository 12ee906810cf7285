"""An app engine with options that change what it writes."""

import json
import os

from sqlalchemy import JSON, Column, Integer, MetaData, Table, create_engine, event, insert

metadata = MetaData()
documents = Table("sqltx_documents", metadata, Column("id", Integer, primary_key=True), Column("body", JSON))


def serialize(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def make_engine(url):
    return create_engine(url, json_serializer=serialize)


# The app's own setting; redirected into the test transaction for the run.
engine = make_engine(os.environ["APP_URL"])
# Options that cannot apply on the run's one connection: the run says so.
pinged = create_engine(os.environ["APP_URL"], pool_pre_ping=True)


@event.listens_for(pinged, "connect")
def _set_up(dbapi_connection, record):
    pass


def store(engine, body):
    with engine.begin() as conn:
        conn.execute(insert(documents).values(id=1, body=body))
