"""An app engine with options that change what it writes and the session
it works in (driver arguments and a connect listener, per database)."""

import json
import os

from sqlalchemy import JSON, Column, Integer, MetaData, Table, create_engine, event, insert, text

metadata = MetaData()
documents = Table("sqltx_documents", metadata, Column("id", Integer, primary_key=True), Column("body", JSON))


def serialize(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def backend(url):
    return str(url).split(":")[0].split("+")[0]


#: per database: the app's connect_args, what its connect listener runs, and
#: the query that reads the session state both set up
SESSION = {
    "postgresql": ({"options": "-c timezone=Pacific/Chatham"}, "SET work_mem = '7MB'",
                   "SELECT current_setting('TimeZone') || ' ' || current_setting('work_mem')"),
    "mysql": ({"init_command": "SET SESSION time_zone = '+05:45'"}, "SET SESSION group_concat_max_len = 4321",
              "SELECT CONCAT(@@session.time_zone, ' ', @@session.group_concat_max_len)"),
    "sqlite": ({"timeout": 7}, "PRAGMA foreign_keys = ON",
               "SELECT (SELECT foreign_keys FROM pragma_foreign_keys) || ' ' || app_answer()"),
}
#: a driver argument another engine sets differently: one connection cannot take both
OTHER = {"postgresql": {"options": "-c timezone=UTC"}, "mysql": {"init_command": "SET SESSION time_zone = '+00:00'"},
         "sqlite": {"timeout": 9}}


def make_engine(url):
    connect_args, listener_sql, _ = SESSION[backend(url)]
    engine = create_engine(url, json_serializer=serialize, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _set_up(dbapi_connection, record):
        cursor = dbapi_connection.cursor()
        cursor.execute(listener_sql)
        cursor.close()
        dbapi_connection.commit()  # else the pool's reset on return rolls back PostgreSQL's SET
        if backend(url) == "sqlite":
            dbapi_connection.create_function("app_answer", 0, lambda: 42)

    return engine


def session_state(engine):
    with engine.connect() as conn:
        return conn.execute(text(SESSION[backend(engine.url)][2])).scalar_one()


# The app's own setting; redirected into the test transaction for the run.
engine = make_engine(os.environ["APP_URL"])
# Options that cannot apply on the run's one connection: the run says so.
pinged = create_engine(os.environ["APP_URL"], pool_pre_ping=True, connect_args=OTHER[backend(os.environ["APP_URL"])])


def store(engine, body):
    with engine.begin() as conn:
        conn.execute(insert(documents).values(id=1, body=body))
