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

import importlib
import multiprocessing
import os
import sys
import traceback
import unittest
from typing import Any

from nose2.events import Plugin

from .async_testcase import AsyncDatabaseTest
from .config import MAIN_SERVER_KEY, WORKERS_KEY, Settings, check_sections
from .config_files import Section, named_sections, one_section, sections_in
from .connection import defer_stop
from .environment import DSN_ENV
from .errors import ConfigError, ConnectionLostError, SqltxError
from .isolation import IsolatedDatabase
from .messages import PREFIX
from .scopes import Scope
from .sharding import ShardRun, filter_suite, suite_ids
from .signals import StopSignals
from .testcase import DatabaseTest, asks_allow_database, asks_real_commits
from .testrun import TestRun

__unittest = True

__all__ = ["SqltxPlugin"]


class _AlwaysOn:
    """nose2 reads ``always-on`` from its own files only; the section may be
    in pyproject.toml or setup.cfg instead, where it means the same."""

    def __get__(self, obj: object, owner: type) -> bool:
        try:
            section = one_section(sections_in(files=("pyproject.toml", "setup.cfg")))
        except ConfigError:
            return True  # the plugin's __init__ reports it
        return section is None or section.active


class SqltxPlugin(Plugin):
    """Isolate every test in a savepoint of one run-long transaction."""

    configSection = "sqltx"
    alwaysOn = _AlwaysOn()
    commandLineSwitch = (None, "sqltx", "Run each test in a rolled-back transaction (nose2-sqltx)")

    def __init__(self) -> None:
        _load_multiprocess(self.session)
        parser = self.session.config
        try:
            check_sections(parser.sections(), self.configSection)
            # nose2's own files (unittest.cfg, nose2.cfg, --config) or pyproject.toml / setup.cfg: one of them
            own = tuple(parser.items(self.configSection)) if parser.has_section(self.configSection) else ()
            own_databases = named_sections(parser)
            others = sections_in(files=("pyproject.toml", "setup.cfg"))
            if any(key == MAIN_SERVER_KEY for key, _ in own):
                # A worker of nose2 -N: the main process's note (its throwaway
                # server's URL) comes on top of the section, wherever that is.
                options = (*[o for s in others for o in s.options], *own)
                databases = (*[d for s in others for d in s.databases], *own_databases)
            else:
                section = one_section([*([Section("unittest.cfg", own, own_databases)] if own else []), *others])
                options = section.options if section is not None else ()
                databases = section.databases if section is not None else ()
            self.settings = Settings.from_options(options, databases=databases)
        except ConfigError as exc:
            _fatal(exc)
        self.addArgument(self._shard_option, None, "sqltx-shard",
                         "nose2-sqltx: run shard I of N of the suite (1/3, 2/3, 3/3; wins over SQLTX_SHARD, "
                         "[sqltx] shard and the CI's parallel job variables)")
        self.addArgument(self._dsn_option, None, "sqltx-dsn",
                         "nose2-sqltx: the database URL for this run (wins over SQLTX_DSN and [sqltx] dsn); "
                         "python -m nose2_sqltx --help lists every setting")
        self.database: IsolatedDatabase | None = None
        #: the run's server, database and summary (made again in startTestRun: --sqltx-dsn may change the settings)
        self.run = TestRun(self.settings)
        #: parallel runs: the URL the workers connect with (its driver matched to the app's and the tests')
        self._run_url: Any = None
        self._parallel = False
        self._plain: dict[int, Scope] = {}
        #: this run's part of the suite, and the times of the test classes it ran
        self._shard = ShardRun(None, None)
        self._summary = ""
        self._signals = StopSignals(defer=defer_stop)
        #: for the line a signal's stop prints: the test it stopped, how many finished
        self._running: Any = None
        self._finished: set[str] = set()

    def _shard_option(self, values: list[str]) -> None:
        try:
            self.settings = self.settings.with_shard(values[0], "--sqltx-shard")
        except ConfigError as exc:
            _fatal(exc)

    def _dsn_option(self, values: list[str]) -> None:
        try:
            self.settings = self.settings.with_dsn(values[0], "--sqltx-dsn")
        except ConfigError as exc:
            _fatal(exc)
        os.environ[DSN_ENV] = values[0]  # where the workers of nose2 -N read it

    def startTestRun(self, event: Any) -> None:
        """Start the throwaway server if no dsn is set; connect, open the run's
        transaction, create the schema, run the fixtures. Under nose2's
        multiprocess plugin the workers do the database part, each on its own."""
        self._signals.install()
        self._parallel = _multiprocess_active(self.session)
        self._shard = ShardRun(self.settings.shard, self.settings.durations)
        if self.settings.shard is not None and getattr(event, "suite", None) is not None:
            keep, lines = self._shard.keep(suite_ids(event.suite))
            for line in lines:
                print(line, file=sys.stderr)
            event.suite = filter_suite(event.suite, keep)  # nose2 runs what this hook leaves here
        self.run = TestRun(self.settings)
        try:
            async_tests = _async_test_class(getattr(event, "suite", None))
            if self._parallel:
                # Workers are forked after this hook: hold no connection across
                # the fork. Check what each worker will need, once, here.
                self._run_url = self.run.preflight(async_tests)
                if self._run_url is not self.settings.url and self.run.server is None:
                    # The driver was matched to the tests: workers read the URL from here.
                    os.environ[DSN_ENV] = self._run_url.render_as_string(hide_password=False)
            else:
                self.database = self.run.start(async_tests)
        except SqltxError as exc:
            self.database = None
            self.run.stop_server()
            self._signals.restore()
            _fatal(exc)
        except BaseException:  # Ctrl-C while starting: leave nothing behind
            self.database = None
            self.run.stop_server()
            self._signals.restore()
            raise

    def registerInSubprocess(self, event: Any) -> None:
        """Join nose2's multiprocess workers; tell them the throwaway server's URL."""
        event.pluginClasses.append(type(self))
        # Workers read the session's config, which the main process sends.
        config = self.session.config
        if not config.has_section(self.configSection):
            config.add_section(self.configSection)
        config.set(self.configSection, WORKERS_KEY, str(_multiprocess_workers(self.session)))
        if self.run.server is not None:
            # nose2 reads the config with % interpolation: escape the URL's %.
            url = (self._run_url or self.run.server.url).render_as_string(hide_password=False)
            config.set(self.configSection, "dsn", url.replace("%", "%%"))
            config.set(self.configSection, MAIN_SERVER_KEY, "true")

    def startSubprocess(self, event: Any) -> None:
        """In a worker: its own run, in a schema of its own. If that fails,
        every test the worker gets is reported as an error (never a hang,
        never a silent pass)."""
        try:
            if self.settings.url is None:
                raise SqltxError("the worker got no database URL from the main process")
            # (the main process matched the URL's driver to the tests, which a worker cannot see all of)
            self.run = TestRun(self.settings, worker=True)
            self.database = self.run.start(matched=True)
        except Exception as exc:  # noqa: BLE001 - whatever it is, every test of the worker reports it
            self.database = None
            error = exc if isinstance(exc, SqltxError) else SqltxError(f"{type(exc).__name__}: {exc}")
            event.executeTests = lambda suite, result: _fail_all(suite, result, error)

    def stopSubprocess(self, event: Any) -> None:
        """In a worker: roll back its run (nose2 sends nothing back after this)."""
        self.database = None
        for problem in self.run.stop():  # a worker can only say it on stderr
            print(f"{PREFIX}: worker {os.getpid()}: {problem}", file=sys.stderr)

    def startTest(self, event: Any) -> None:
        """Give tests that are not DatabaseTests a scope too (``current()``)."""
        self._running = event.test
        self._shard.started(event.test.id(), event.startTime)
        if self.database is not None and not isinstance(event.test, DatabaseTest):
            test = event.test
            stray = self.settings.only_database_tests and not asks_allow_database(test)
            try:
                self._plain[id(test)] = self.database.begin_scope(real_commits=asks_real_commits(test),
                                                                  label=test.id(), stray=stray)
            except Exception:  # noqa: BLE001 - the test's error, whatever it is
                event.result.addError(event.test, _short_exc_info())

    def stopTest(self, event: Any) -> None:
        """Roll back a plain test's scope; a problem is that test's error."""
        if self._running is not None and self._running.id() in self._finished:
            self._running = None
        self._shard.stopped(event.test.id(), event.stopTime)
        scope = self._plain.pop(id(event.test), None)
        if scope is not None and self.database is not None:
            try:
                self.database.end_scope(scope)
            except Exception:  # noqa: BLE001 - the test's error, whatever it is
                event.result.addError(event.test, _short_exc_info())

    def setTestOutcome(self, event: Any) -> None:
        """End a passing plain test's scope now, so a problem replaces the pass;
        explain lock and statement timeouts in a test's error."""
        self._finished.add(event.test.id())
        if event.outcome == "passed" and self.database is not None:
            scope = self._plain.pop(id(event.test), None)
            if scope is not None:
                try:
                    self.database.end_scope(scope)
                except Exception:  # noqa: BLE001 - the test's error, whatever it is
                    event.outcome, event.expected, event.exc_info = "error", False, _short_exc_info()
        if type(event.test).__name__ == "_ErrorHolder":
            # unittest's stand-in for a class or module set-up or tear-down,
            # which nose2's report would call "_ErrorHolder": name the class.
            event.test = ClassLevel(str(event.test))
        exc = event.exc_info[1] if event.exc_info else None
        if exc is not None and self.database is not None:
            self.database.annotate(exc)
            if self.database.lost is not None:
                # Every later test would fail the same way: the run ends here.
                event.result.shouldStop = True

    def stopTestRun(self, event: Any) -> None:
        """Roll back everything and close; a problem here fails the run."""
        stopped = self._signals.received
        self._signals.restore()
        database, self.database = self.database, None
        self._shard.finish()
        problems = self.run.stop()
        for problem in problems:
            _report_end_of_run(event, problem)
        self._summary = self.run.summary()
        if stopped is not None:
            # One line instead of "OK", a summary and a traceback; then the
            # process ends as the signal would have ended it.
            ran = len(self._finished)
            where = f" in {self._running.id()}" if self._running is not None else ""
            done = "; ".join(str(p) for p in problems) if problems else (
                "the run's transaction was rolled back" if database is not None
                else "each worker rolls back its own" if self._parallel else "no transaction was open")
            print(f"{PREFIX}: stopped by {stopped.label}{where} after {ran} test{'' if ran == 1 else 's'}; {done}",
                  file=sys.stderr)
            self._signals.die(stopped)

    def afterSummaryReport(self, event: Any) -> None:
        """Say which database was used and how long the set-up took."""
        if self._summary:
            event.stream.writeln(self._summary)


_MP = "nose2.plugins.mp"


def _load_multiprocess(session: Any) -> None:
    """Load nose2's multiprocess plugin if the config did not, so that
    ``nose2 -N 2`` runs parallel workers instead of failing on ``-N``."""
    if multiprocessing.parent_process() is not None:
        return  # a worker: nose2 gives it the parent's plugins, multiprocess included
    if any(type(p).__module__ == _MP for p in session.plugins) or \
            _MP in session.unittest.as_list("exclude-plugins", []):
        return
    session.loadPluginsFromModule(importlib.import_module(_MP))


def _async_test_class(suite: Any) -> str | None:
    """The name of an ``AsyncDatabaseTest`` class in ``suite`` (nose2's, nested), if it holds one."""
    if isinstance(suite, AsyncDatabaseTest):
        return f"{type(suite).__module__}.{type(suite).__qualname__}"
    if isinstance(suite, unittest.TestSuite):
        for test in suite:
            found = _async_test_class(test)
            if found is not None:
                return found
    return None


def _multiprocess_plugin(session: Any) -> Any:
    """nose2's multiprocess plugin, if it will run the tests in workers (else None)."""
    return next((p for p in session.hooks.startTestRun.plugins
                 if type(p).__module__ == _MP and type(p).__name__ == "MultiProcess"), None)


def _multiprocess_active(session: Any) -> bool:
    """Whether nose2's multiprocess plugin will run the tests in workers."""
    return _multiprocess_plugin(session) is not None


def _multiprocess_workers(session: Any) -> int:
    """How many workers nose2's multiprocess plugin starts (0: cannot tell)."""
    return int(getattr(_multiprocess_plugin(session), "procs", 0) or 0)


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


class ClassLevel(unittest.TestCase):
    """Stands for a class's (or module's) set-up or tear-down in the report,
    under unittest's own description of it (``setUpClass (test_x.TestX)``)."""

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description

    def runTest(self) -> None:  # pragma: no cover - never run
        pass

    def id(self) -> str:
        return self.description

    def __str__(self) -> str:
        return self.description


def _report_end_of_run(event: Any, exc: Exception) -> None:
    if isinstance(exc, ConnectionLostError) and exc.reported:
        return  # a test's error says it; the summary line points there
    if not isinstance(exc, SqltxError):
        exc = SqltxError(f"cleaning up the run failed: {type(exc).__name__}: {exc}")
    event.result.addError(EndOfRun(), _without_traceback(exc))


def _without_traceback(exc: BaseException) -> Any:
    # Our message says it all. nose2 takes a "traceback" that is a list of
    # lines as already formatted.
    return (type(exc), exc, traceback.format_exception_only(type(exc), exc))


def _short_exc_info() -> Any:
    exc = sys.exc_info()[1]
    if isinstance(exc, SqltxError):
        return _without_traceback(exc)
    return sys.exc_info()


def _fatal(exc: Exception) -> None:
    """User mistakes: one line on stderr, exit status 2, no traceback."""
    print(f"{PREFIX}: error: {exc}", file=sys.stderr)
    raise SystemExit(2)
