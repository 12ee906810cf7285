import os

from deferred_ops import tables
from sqlalchemy import MetaData, create_engine, event

metadata = MetaData()
sqlite = os.environ["SQLTX_DSN"].startswith("sqlite")
parent, child = tables("sqltx_deferred", metadata, deferred_unique=not sqlite)

# The app's engine, set up as in production: on SQLite, foreign keys are
# enforced only on connections that ask (SQLAlchemy's recipe, on this engine).
engine = create_engine(os.environ["SQLTX_DSN"])

if sqlite:
    @event.listens_for(engine, "connect")
    def _foreign_keys(dbapi_connection, record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
