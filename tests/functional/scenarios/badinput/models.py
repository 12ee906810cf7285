"""The shared schema plus objects that are wrong on purpose."""

from scenario_models import *  # noqa: F403
from scenario_models import Reference, insert

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
