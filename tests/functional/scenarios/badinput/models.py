"""The shared schema plus objects that are wrong on purpose."""

from scenario_models import *  # noqa: F403
from scenario_models import Reference, insert
from sqlalchemy import Column, Integer, MetaData, String, Table

not_metadata = 42


def broken_fixture(connection):
    connection.execute(insert(Reference), [{"id": 1}])
    raise ValueError("the fixture broke on purpose")


def _make_listener_engine():
    import os

    from sqlalchemy import create_engine, event

    engine = create_engine(os.environ.get("SQLTX_DSN", "sqlite://"))

    @event.listens_for(engine, "connect")
    def set_up(dbapi_connection, record):
        raise ValueError("the listener broke on purpose")

    return engine


listener_engine = _make_listener_engine()


def committing_fixture(connection):
    from sqlalchemy import text

    connection.execute(insert(Reference), [{"id": 1}])
    connection.execute(text("COMMIT"))


# Two MetaData objects (two apps' models) that both define a table "audit".
first = MetaData()
Table("audit", first, Column("id", Integer, primary_key=True), Column("what", String(20)))
second = MetaData()
Table("audit", second, Column("id", Integer, primary_key=True), Column("at", String(20)))
