"""An app that makes its engine itself, on first use, from the environment."""

import json
import os

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool


def dsn():
    return os.environ["SQLTX_DSN"]


class App:
    """A per-app manager made on first use (create_app() style)."""

    def __init__(self, **options):
        self.engine = create_engine(dsn(), **options)
        self.Session = sessionmaker(self.engine)


def migration_engine():
    """What a migration tool's env.py does while a test runs."""
    return create_engine(dsn(), poolclass=NullPool)


def json_app():
    return App(json_serializer=lambda value: json.dumps(value, sort_keys=True))
