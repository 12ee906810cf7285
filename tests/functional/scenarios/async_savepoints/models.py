import os

from savepoint_ops import rows_table
from sqlalchemy import MetaData, event
from sqlalchemy.ext.asyncio import create_async_engine

metadata = MetaData()
rows = rows_table("sqltx_savepoint_rows", metadata)

# The app's async engine, configured as the oracle's: on SQLite, SQLAlchemy's
# documented recipe for savepoints on aiosqlite (the driver's own
# transaction handling off, BEGIN sent by SQLAlchemy).
engine = create_async_engine(os.environ["SQLTX_DSN"])

if os.environ["SQLTX_DSN"].startswith("sqlite"):
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")
