"""nose2 plugin: run every test in a rolled-back transaction on a real database.

Load it with ``nose2 --plugin nose2_sqltx`` or in unittest.cfg::

    [unittest]
    plugins = nose2_sqltx

    [sqltx]
    # no dsn: a throwaway PostgreSQL server is started for the run
    dsn = postgresql+psycopg2://postgres@127.0.0.1:5432/test
    metadata = myapp.models:Base
    fixtures = myapp.testing:seed_roles
    lock-timeout = 10s
    statement-timeout = 60s

With nose2's multiprocess plugin (``--plugin nose2.plugins.mp -N 2``), every
worker opens its own run, in a schema of its own.

Loaded means on; ``always-on = false`` under ``[sqltx]`` switches it off
unless ``--sqltx`` is given. ``SQLTX_DSN`` in the environment wins over
``dsn``. nose2 reads unittest.cfg with ``%`` interpolation: write a
URL-encoded password's ``%40`` as ``%%40``, or set ``SQLTX_DSN`` instead.

This module only translates nose2's hooks into calls on
:class:`nose2_sqltx.isolation.IsolatedDatabase`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from typing import Any, NamedTuple
import unittest

from nose2.events import Plugin
from sqlalchemy import MetaData

from .config import Settings, import_object, mask_url
from .dialects import backend_for
from .dialects.base import exception_chain
from .errors import ConfigError, LeakError, SqltxError
from .apps import redirect_kind
from .isolation import IsolatedDatabase, Scope
from .server import TemporaryPostgres
from .testcase import DatabaseTest

__unittest = True

__all__ = ["SqltxPlugin"]

PREFIX = "nose2-sqltx"


class SqltxPlugin(Plugin):
    """Isolate every test in a savepoint of one run-long transaction."""

    configSection = "sqltx"
    alwaysOn = True
    commandLineSwitch = (None, "sqltx", "Run each test in a rolled-back transaction (nose2-sqltx)")

    def __init__(self) -> None:
        parser = self.session.config
        options = parser.items(self.configSection) if parser.has_section(self.configSection) else []
        try:
            self.settings = Settings.from_options(options)
            if self.settings.url is not None:
                backend_for(self.settings.url, self.settings.dsn_source,
                            create_database=self.settings.create_database)
        except ConfigError as exc:
            _fatal(exc)
        self.database: IsolatedDatabase | None = None
        self.server: TemporaryPostgres | None = None
        self._parallel = False
        self._url: Any = None
        self._server_version = ""
        self._plain: dict[int, Scope] = {}
        self._from_main_server = self.settings.from_main_server
        self._summary = ""

    def startTestRun(self, event: Any) -> None:
        """Start the throwaway server if no dsn is set; connect, open the run's
        transaction, create the schema, run the fixtures. Under nose2's
        multiprocess plugin the workers do the database part, each on its own."""
        self._terminated = False
        self._previous_sigterm = _catch_sigterm(self._on_sigterm)
        self._parallel = _multiprocess_active(self.session)
        try:
            # Imports first: a typo should not cost a server start.
            loaded = _load_objects(self.settings)
            url = self.settings.url
            if url is None:
                self.server = TemporaryPostgres(
                    bindir=self.settings.pg_bindir, keep=self.settings.keep_server,
                    tcp=self.settings.server_tcp, base_dir=self.settings.server_dir,
                )
                self.server.start()
                url = self.server.url
            self._url = url
            if self._parallel:
                # Workers are forked after this hook: hold no connection across
                # the fork. Check what each worker will need, once, here.
                self._server_version = self._make_database(url, loaded, schema=_worker_schema()).preflight()
            else:
                self.database = self._make_database(url, loaded)
                self.database.start()
        except SqltxError as exc:
            self.database = None
            self._stop_server()
            _restore_sigterm(self._previous_sigterm)
            _fatal(exc)
        except BaseException:  # Ctrl-C while starting: leave nothing behind
            self.database = None
            self._stop_server()
            _restore_sigterm(self._previous_sigterm)
            raise

    def _make_database(self, url: Any, loaded: Loaded, schema: str | None = None) -> IsolatedDatabase:
        settings = self.settings
        return IsolatedDatabase(
            url, metadata=loaded.metadata, fixtures=loaded.fixtures, redirect=loaded.redirect, schema=schema,
            create_database=settings.create_database, alembic=settings.alembic,
            allow_databases=settings.allow_databases,
            # The throwaway server (here, or the main process's for a worker)
            # is the run's own: the production guard has nothing to protect.
            trusted=self.server is not None or self._from_main_server,
            lock_timeout_ms=settings.lock_timeout_ms, statement_timeout_ms=settings.statement_timeout_ms,
        )

    def registerInSubprocess(self, event: Any) -> None:
        """Join nose2's multiprocess workers; tell them the throwaway server's URL."""
        event.pluginClasses.append(type(self))
        if self.server is not None:
            # Workers read the session's config, which the main process sends.
            config = self.session.config
            if not config.has_section(self.configSection):
                config.add_section(self.configSection)
            # nose2 reads the config with % interpolation: escape the URL's %.
            url = self.server.url.render_as_string(hide_password=False)
            config.set(self.configSection, "dsn", url.replace("%", "%%"))
            config.set(self.configSection, "sqltx-main-server", "true")

    def startSubprocess(self, event: Any) -> None:
        """In a worker: its own run, in a schema of its own. If that fails,
        every test the worker gets is reported as an error (never a hang,
        never a silent pass)."""
        try:
            url = self.settings.url
            if url is None:
                raise SqltxError("the worker got no database URL from the main process")
            self.database = self._make_database(url, _load_objects(self.settings), schema=_worker_schema())
            self.database.start()
        except Exception as exc:
            self.database = None
            error = exc if isinstance(exc, SqltxError) else SqltxError(f"{type(exc).__name__}: {exc}")
            event.executeTests = lambda suite, result: _fail_all(suite, result, error)

    def stopSubprocess(self, event: Any) -> None:
        """In a worker: roll back its run (nose2 sends nothing back after this)."""
        database, self.database = self.database, None
        if database is not None:
            try:
                database.stop()
            except Exception as exc:
                print(f"{PREFIX}: worker {os.getpid()}: {exc}", file=sys.stderr)

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # unittest lets only KeyboardInterrupt through its error handling, so
        # SIGTERM travels as one and stopTestRun rolls back before we exit.
        self._terminated = True
        raise Terminated()

    def startTest(self, event: Any) -> None:
        """Give tests that are not DatabaseTests a scope too (``current()``)."""
        if self.database is not None and not isinstance(event.test, DatabaseTest):
            try:
                self._plain[id(event.test)] = self.database.begin_scope()
            except Exception:
                event.result.addError(event.test, _short_exc_info())

    def stopTest(self, event: Any) -> None:
        """Roll back a plain test's scope; a problem is that test's error."""
        scope = self._plain.pop(id(event.test), None)
        if scope is not None and self.database is not None:
            try:
                self.database.end_scope(scope)
            except Exception:
                event.result.addError(event.test, _short_exc_info())

    def setTestOutcome(self, event: Any) -> None:
        """End a passing plain test's scope now, so a problem replaces the pass;
        explain lock and statement timeouts in a test's error."""
        if event.outcome == "passed" and self.database is not None:
            scope = self._plain.pop(id(event.test), None)
            if scope is not None:
                try:
                    self.database.end_scope(scope)
                except Exception:
                    event.outcome, event.expected, event.exc_info = "error", False, _short_exc_info()
        exc = event.exc_info[1] if event.exc_info else None
        for cause in exception_chain(exc) if exc is not None else ():
            if isinstance(cause, LeakError):
                cause.reported = True  # type: ignore[attr-defined]  # the test's end need not raise it again
        if exc is not None and self.database is not None:
            note = self.database.explain(exc)
            if note and note not in getattr(exc, "__notes__", ()):
                exc.add_note(note)

    def stopTestRun(self, event: Any) -> None:
        """Roll back everything and close; a problem here fails the run."""
        _restore_sigterm(getattr(self, "_previous_sigterm", None))
        database, self.database = self.database, None
        server = self.server
        try:
            if database is not None:
                database.stop()
        except Exception as exc:
            _report_end_of_run(event, exc)
        finally:
            try:
                self._stop_server()
            except Exception as exc:
                _report_end_of_run(event, exc)
        if database is not None:
            self._summary = _summary(database.server_version, database.masked_url, server, _run_details(database))
        elif self._parallel and self._url is not None:
            backend = backend_for(self._url, create_database=self.settings.create_database)
            self._summary = _summary(self._server_version, mask_url(self._url), server,
                                     f"parallel workers, each in {backend.worker_namespace}; {backend.cleanup_note}")
        if getattr(self, "_terminated", False):
            print(f"{PREFIX}: stopped by SIGTERM; the run's transaction was rolled back", file=sys.stderr)
            os.kill(os.getpid(), signal.SIGTERM)  # die as SIGTERM would have (exit 143)

    def afterSummaryReport(self, event: Any) -> None:
        """Say which database was used and how long the set-up took."""
        if self._summary:
            event.stream.writeln(self._summary)


def _multiprocess_active(session: Any) -> bool:
    """Whether nose2's multiprocess plugin will run the tests in workers."""
    return any(type(p).__module__ == "nose2.plugins.mp" and type(p).__name__ == "MultiProcess"
               for p in session.hooks.startTestRun.plugins)


def _worker_schema() -> str:
    return f"sqltx_worker_{os.getpid()}"


def _fail_all(suite: Any, result: Any, error: Exception) -> None:
    """Report every test of ``suite`` as failed by ``error`` (a worker's set-up)."""
    if isinstance(suite, unittest.TestSuite):
        for test in suite:
            _fail_all(test, result, error)
        return
    result.startTest(suite)
    result.addError(suite, _without_traceback(error))
    result.stopTest(suite)


class EndOfRun(unittest.TestCase):
    """Stands for the run itself in the report of a problem found at its end."""

    def runTest(self) -> None:  # pragma: no cover - never run
        pass

    def __str__(self) -> str:
        return f"{PREFIX} (end of run)"


def _report_end_of_run(event: Any, exc: Exception) -> None:
    if not isinstance(exc, SqltxError):
        exc = SqltxError(f"cleaning up the run failed: {type(exc).__name__}: {exc}")
    event.result.addError(EndOfRun(), _without_traceback(exc))


def _summary(version: str, masked_url: str, server: TemporaryPostgres | None, details: str) -> str:
    """The last line of the report: which database, and how the run went."""
    where = f" ({server.describe()})" if server is not None else ""
    return f"{PREFIX}: {version}{where} at {masked_url}; {details}"


def _run_details(database: IsolatedDatabase) -> str:
    tables = sum(len(m.tables) for m in database.metadata) if database.metadata else len(database.created_tables)
    t = database.timings
    return (
        f"connect {t.get('connect', 0):.3f}s, schema ({tables} tables) {t.get('schema', 0):.3f}s, "
        f"fixtures {t.get('fixtures', 0):.3f}s; "
        + (f"code under test ended the run's transaction {len(database.incidents)} time(s), see the errors above"
           if database.incidents else database.backend.cleanup_note)
        + ("; the database was changed outside the run, see the error above" if database.changed else "")
    )


class Loaded(NamedTuple):
    """The objects ``[sqltx]`` names, imported."""

    metadata: list[Any]
    fixtures: list[Any]
    redirect: dict[str, Any]


def _load_objects(settings: Settings) -> Loaded:
    """Import the MetaData objects, fixture callables and app objects that ``[sqltx]`` names."""
    redirect = {path: _load_app_object("engines", path, ("engine",)) for path in settings.engines}
    redirect.update({path: _load_app_object("sessions", path, ("sessionmaker", "scoped_session", "Flask-SQLAlchemy"))
                     for path in settings.sessions})
    return Loaded([_load_metadata(path) for path in settings.metadata],
                  [_load_fixture(path) for path in settings.fixtures], redirect)


def _load_app_object(key: str, path: str, kinds: tuple[str, ...]) -> Any:
    obj = import_object(path, key)
    if redirect_kind(obj) not in kinds:
        wanted = "an Engine" if key == "engines" else "a sessionmaker, a scoped_session or a Flask-SQLAlchemy db"
        other = "sessions" if key == "engines" else "engines"
        hint = f" (list it under {other})" if redirect_kind(obj) is not None else ""
        raise ConfigError(key, path, f"is a {type(obj).__name__}, not {wanted}{hint}",
                          "Point it at the object your app uses, e.g. myapp.db:engine or myapp:db")
    return obj


def _load_metadata(path: str) -> Any:
    obj = import_object(path, "metadata")
    if isinstance(obj, MetaData) or isinstance(getattr(obj, "metadata", None), MetaData):
        return obj
    raise ConfigError(
        "metadata", path, f"is a {type(obj).__name__}, not a MetaData or a declarative Base",
        "Point it at your MetaData or Base, e.g. myapp.models:Base",
    )


def _load_fixture(path: str) -> Any:
    obj = import_object(path, "fixtures")
    if not callable(obj):
        raise ConfigError(
            "fixtures", path, f"is a {type(obj).__name__}, not a callable",
            "Point it at a function that takes the run's Connection, e.g. myapp.testing:seed",
        )
    return obj


def _without_traceback(exc: BaseException) -> Any:
    # Our message says it all. nose2 takes a "traceback" that is a list of
    # lines as already formatted.
    return (type(exc), exc, traceback.format_exception_only(type(exc), exc))


def _short_exc_info() -> Any:
    exc = sys.exc_info()[1]
    if isinstance(exc, SqltxError):
        return _without_traceback(exc)
    return sys.exc_info()


class Terminated(KeyboardInterrupt):
    """SIGTERM, on its way to stopTestRun."""


def _catch_sigterm(handler: Any) -> Any:
    """Install ``handler`` for SIGTERM if nobody else handles it; return the old one."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None  # someone else's handler: leave it alone
    signal.signal(signal.SIGTERM, handler)
    return signal.SIG_DFL


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _fatal(exc: Exception) -> None:
    """User mistakes: one line on stderr, exit status 2, no traceback."""
    print(f"{PREFIX}: error: {exc}", file=sys.stderr)
    raise SystemExit(2)
