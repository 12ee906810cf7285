"""The parts of the real-app support that need no database: which names
look like test databases, the new keys, and redirecting an engine in place
and back."""

import tempfile
import unittest

from sqlalchemy import create_engine, inspect
from sqlalchemy.orm import scoped_session, sessionmaker

from nose2_sqltx.config import Settings
from nose2_sqltx.errors import ConfigError, UnsupportedObjectError
from nose2_sqltx.leaks import names_of
from nose2_sqltx.redirect import Redirection, redirect_kind
from nose2_sqltx.safety import looks_like_test

APP_ENGINE = create_engine("postgresql+psycopg2://app:pw@app-db.invalid/app")


class TestDatabaseNames(unittest.TestCase):
    def test_names(self):
        for name in ("test", "app_test", "test_app", "testing", "myapp-tests", "apptest", "TEST_DB"):
            self.assertTrue(looks_like_test(name), name)
        for name in ("app", "shop", "postgres", "production", "attestation_db"):
            self.assertFalse(looks_like_test(name), name)


class TestKeys(unittest.TestCase):
    def test_engines_sessions_allow(self):
        s = Settings.from_options([("engines", "a.b:engine"), ("sessions", "a:db, a.c:Session"),
                                   ("allow-database", "app_dev")], environ={})
        self.assertEqual(s.engines, ("a.b:engine",))
        self.assertEqual(s.sessions, ("a:db", "a.c:Session"))
        self.assertEqual(s.allow_databases, ("app_dev",))
        env = Settings.from_options([("allow-database", "app_dev")], environ={"SQLTX_ALLOW_DATABASE": "other"})
        self.assertEqual(env.allow_databases, ("other",))

    def test_alembic_and_metadata_exclude_each_other(self):
        with tempfile.NamedTemporaryFile(suffix=".ini") as ini:
            self.assertEqual(Settings.from_options([("alembic", ini.name)], environ={}).alembic, ini.name)
            with self.assertRaises(ConfigError) as caught:
                Settings.from_options([("alembic", ini.name), ("metadata", "m:Base")], environ={})
        self.assertIn("[sqltx] alembic", str(caught.exception))
        self.assertIn("keep alembic (migrations) or metadata (create_all), not both", str(caught.exception))

    def test_alembic_file_must_exist(self):
        with self.assertRaises(ConfigError) as caught:
            Settings.from_options([("alembic", "no/such/alembic.ini")], environ={})
        self.assertEqual(str(caught.exception), "[sqltx] alembic = no/such/alembic.ini: no such file. Name your "
                         "alembic.ini, relative to the directory nose2 runs in")


class TestRedirection(unittest.TestCase):
    def test_engine_in_place_and_back(self):
        target = create_engine("sqlite://")
        factory = sessionmaker(bind=APP_ENGINE)
        unbound = sessionmaker()
        scoped = scoped_session(sessionmaker(bind=APP_ENGINE))
        redirect = Redirection({"e": APP_ENGINE, "f": factory, "u": unbound, "s": scoped})
        pool, url = APP_ENGINE.pool, APP_ENGINE.url
        redirect.point(target)
        try:
            self.assertIs(APP_ENGINE.pool, target.pool)
            self.assertEqual(APP_ENGINE.dialect.name, "sqlite")
            self.assertEqual(inspect(APP_ENGINE).get_table_names(), [])  # a real engine: reflection works
            self.assertIs(unbound.kw["bind"], target)
            self.assertIs(factory.kw["bind"], APP_ENGINE)  # follows its engine
            self.assertEqual(redirect.engines, [APP_ENGINE])
        finally:
            redirect.restore()
            target.dispose()
        self.assertIs(APP_ENGINE.pool, pool)
        self.assertEqual(APP_ENGINE.url, url)
        self.assertEqual(APP_ENGINE.dialect.name, "postgresql")
        self.assertIsNone(unbound.kw["bind"])

    def test_kinds_and_names(self):
        self.assertEqual(redirect_kind(APP_ENGINE), "engine")
        self.assertEqual(redirect_kind(sessionmaker()), "sessionmaker")
        from sqlalchemy.ext.asyncio import AsyncEngine, async_scoped_session, async_sessionmaker

        self.assertEqual(redirect_kind(AsyncEngine(create_engine("sqlite+aiosqlite://"))), "AsyncEngine")
        self.assertEqual(redirect_kind(async_sessionmaker()), "async_sessionmaker")
        self.assertEqual(redirect_kind(async_scoped_session(async_sessionmaker(), scopefunc=object)),
                         "async_scoped_session")
        self.assertIsNone(redirect_kind(object()))
        self.assertIn(f"{__name__}:APP_ENGINE", names_of(APP_ENGINE))
        with self.assertRaises(UnsupportedObjectError) as caught:
            Redirection({"x": object()})
        self.assertIsInstance(caught.exception, TypeError)
        self.assertEqual(str(caught.exception), "x is a object, not an Engine, sessionmaker, scoped_session, "
                         "Flask-SQLAlchemy db, AsyncEngine, async_sessionmaker or async_scoped_session")


if __name__ == "__main__":
    unittest.main()
