"""pytest plugin: every test in a rolled-back transaction on a real database.

Installed with the package (entry point ``pytest11``), and inactive unless
configured: a ``[tool.sqltx]`` section in pyproject.toml (or ``[sqltx]`` in
setup.cfg or unittest.cfg), ``SQLTX_DSN`` in the environment, ``--sqltx``
or ``--sqltx-dsn`` on the command line, or ``-p nose2_sqltx.pytest_plugin``.
``always-on = false`` in the section keeps it off unless ``--sqltx`` is given.

``DatabaseTest`` and ``AsyncDatabaseTest`` classes work as under nose2;
function tests get a scope of their own and the fixtures
``sqltx_session``, ``sqltx_connection`` and ``sqltx_engine`` (and
``sqltx_databases``, the test's scopes on the run's other databases,
``[sqltx:<name>]``, by name)::

    def test_order(sqltx_session):
        sqltx_session.add(Order(customer_id=1))
        sqltx_session.commit()          # undone after the test

With pytest-xdist (``pytest -n 2``) every worker opens its own run, in a
schema of its own, as nose2's ``-N`` workers do.

This module only translates pytest's hooks into calls on
:class:`nose2_sqltx.testrun.TestRun`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from .async_testcase import AsyncDatabaseTest
from .config import Settings
from .config_files import find_section
from .connection import defer_stop
from .environment import DSN_ENV
from .errors import NotActiveError, SqltxError
from .isolation import IsolatedDatabase, explain_inactive
from .leaks import is_write
from .messages import PREFIX
from .scopes import Scope
from .sharding import ShardRun, unit_of_nodeid
from .signals import StopSignals
from .testcase import DatabaseTest, allows_database, wants_real_commits, when_not_running
from .testrun import TestRun

__unittest = True

__all__ = ["SqltxPytest", "sqltx_connection", "sqltx_databases", "sqltx_engine", "sqltx_session"]

#: what a worker of pytest-xdist gets from the main process: the throwaway server's URL
_WORKER_SERVER = "sqltx_server"
_PLUGIN_NAME = "nose2_sqltx.pytest_plugin"
#: pytest's own fixtures for setUpClass/setUpModule and setup_module/setup_class:
#: they run outside the tests, as under nose2 and unittest (a DatabaseTest's
#: class data has a scope of its own, opened by the class)
_RUNNERS_OWN = ("_unittest_", "_xunit_")


def pytest_addoption(parser: Any, pluginmanager: Any) -> None:
    group = parser.getgroup("sqltx", "nose2-sqltx: each test in a rolled-back transaction")
    group.addoption("--sqltx", action="store_true", default=False,
                    help="switch nose2-sqltx on (also without a [tool.sqltx] section or SQLTX_DSN)")
    group.addoption("--sqltx-dsn", default=None, metavar="URL",
                    help="nose2-sqltx: the database URL for this run (wins over SQLTX_DSN and the dsn key)")
    group.addoption("--sqltx-shard", default=None, metavar="I/N",
                    help="nose2-sqltx: run shard I of N of the suite (1/3, 2/3, 3/3; wins over SQLTX_SHARD, "
                         "the shard key and the CI's parallel job variables)")
    if importlib.util.find_spec("xdist") is None or pluginmanager.is_blocked("xdist"):
        # Without pytest-xdist, `pytest -n 2` would be a usage error that
        # does not say what is missing.
        # (pytest keeps lowercase short options for itself and pytest-xdist; _addoption is how xdist adds -n)
        group._addoption("-n", "--numprocesses", dest="sqltx_numprocesses", default=None, help=argparse.SUPPRESS)


def pytest_configure(config: Any) -> None:
    if getattr(config.option, "sqltx_numprocesses", None) is not None:
        raise pytest.UsageError(f"{PREFIX}: pytest -n needs the pytest-xdist plugin, which is not installed "
                                "(or is switched off with -p no:xdist): "
                                "pip install pytest-xdist (each worker gets its own run), or run without -n")
    try:
        section = find_section(config.invocation_params.dir)
    except SqltxError as exc:
        raise pytest.UsageError(f"{PREFIX}: error: {exc}") from None
    dsn = config.getoption("sqltx_dsn")
    explicit = config.getoption("sqltx") or dsn is not None or _loaded_with_p(config)
    # always-on = false in the section keeps it off, whatever the environment says, unless asked for here
    active = explicit or (section.active if section is not None else bool(os.environ.get(DSN_ENV, "").strip()))
    # Under pytest no DatabaseTest opens a run (the unittest adapter's way):
    # the plugin does, or asking for one says how to switch it on.
    when_not_running(None)
    explain_inactive(_not_active)
    if not active:
        config.pluginmanager.register(_Inactive(), "sqltx-inactive")
        return
    try:
        settings = Settings.from_options(section.options if section is not None else (),
                                         databases=section.databases if section is not None else ())
        if dsn is not None:
            settings = settings.with_dsn(dsn, "--sqltx-dsn")
        shard = config.getoption("sqltx_shard")
        if shard is not None:
            settings = settings.with_shard(shard, "--sqltx-shard")
    except SqltxError as exc:
        raise pytest.UsageError(f"{PREFIX}: error: {exc}") from None
    config.pluginmanager.register(SqltxPytest(config, settings), "sqltx-run")


def _loaded_with_p(config: Any) -> bool:
    args = list(config.invocation_params.args)
    return any(arg == "-p" + _PLUGIN_NAME or (arg == "-p" and nxt == _PLUGIN_NAME)
               for arg, nxt in zip(args, [*args[1:], ""], strict=True))


def _not_active(what: str) -> Exception:
    """What asking for the run says when pytest has none open (the plugin is off, or the run not started)."""
    return NotActiveError(what, runner="pytest")


class _Inactive:
    """The plugin switched off: a DatabaseTest collected is a usage error, not a test error per class."""

    def pytest_collection_finish(self, session: Any) -> None:
        for item in session.items:
            if _is_database_test(item):
                what = "AsyncDatabaseTest" if issubclass(item.cls, AsyncDatabaseTest) else "DatabaseTest"
                raise pytest.UsageError(f"{PREFIX}: error: {item.nodeid}: {_not_active(what)}")


class SqltxPytest:
    """The run of one pytest process (or one pytest-xdist worker)."""

    def __init__(self, config: Any, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        worker_input = getattr(config, "workerinput", None)
        self.worker = worker_input is not None
        #: the main process of pytest-xdist: its workers run the tests, each with a run of its own
        self.controller = not self.worker and getattr(config.option, "dist", "no") != "no"
        main_server = worker_input.get(_WORKER_SERVER) if worker_input is not None else None
        workers = int(worker_input.get("workercount", 0)) if worker_input is not None else 0
        self.run = TestRun(settings, worker=self.worker, workers=workers, main_server=main_server)
        self.database: IsolatedDatabase | None = None
        self.problems: list[Exception] = []
        #: a worker's run that could not start: every test it gets fails with this
        self.failed: SqltxError | None = None
        self.signals = StopSignals(defer=defer_stop)
        self.summary = ""
        #: this run's part of the suite (every xdist worker computes the same), and its test classes' times
        self.shard = ShardRun(settings.shard, settings.durations, unit_of=unit_of_nodeid)

    # -- the run -----------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: Any) -> None:
        shard = self.settings.shard
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if self.controller and shard is not None and reporter is not None:
            reporter.write_line(f"{PREFIX}: shard {shard} (from {shard.source}): each worker picks the same part")
        if self.controller:
            # Before the workers start: one throwaway server for all of them,
            # and one line for a mistake instead of one crash per worker.
            try:
                self.run.preflight()
            except SqltxError as exc:
                self.run.stop_server()
                raise pytest.UsageError(f"{PREFIX}: error: {exc}") from None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.run.server is not None:
            node.workerinput[_WORKER_SERVER] = self.run.server.url.render_as_string(hide_password=False)

    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list[Any]) -> None:
        if self.settings.shard is None:
            return
        keep, lines = self.shard.keep(item.nodeid for item in items)
        if not self.worker:  # every worker would say the same
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            for line in lines:
                if reporter is not None:
                    reporter.write_line(line)
        deselected = [item for item in items if item.nodeid not in keep]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if item.nodeid in keep]

    def pytest_runtest_logreport(self, report: Any) -> None:
        if not self.worker:  # the main process of xdist gets its workers' reports too
            self.shard.took(report.nodeid, report.duration, new_test=report.when == "setup")

    def pytest_collection_finish(self, session: Any) -> None:
        if self.controller or session.config.option.collectonly or not session.items:
            return
        self.signals.install()
        try:
            self.database = self.run.start(async_tests=_async_test_class(session.items))
        except SqltxError as exc:
            self.signals.restore()
            if not self.worker:
                raise pytest.UsageError(f"{PREFIX}: error: {exc}") from None
            # A worker cannot stop the run with one line: every test it gets
            # fails with the reason (never a hang, never a silent pass).
            self.failed = exc
        except BaseException:
            self.signals.restore()
            raise

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: Any) -> None:
        if self.failed is not None:
            raise self.failed

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: Any) -> None:
        self.signals.restore()
        if not self.worker:
            self.shard.finish()
        self.problems = self.run.stop()
        self.database = None
        self.summary = self.run.summary()
        if self.problems:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for problem in self.problems:
            terminalreporter.write_line(f"{PREFIX}: error: {problem}", red=True)
        if self.summary and not self.worker:
            terminalreporter.write_line(self.summary)

    def pytest_unconfigure(self, config: Any) -> None:
        when_not_running(None)
        explain_inactive(None)
        stopped = self.signals.received
        if stopped is not None:
            print(f"{PREFIX}: stopped by {stopped.label}; "
                  f"{'the run was rolled back' if self.summary else 'no transaction was open'}", file=sys.stderr)
            self.signals.die(stopped)

    # -- tests -------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, Any, Any]:
        # A fixture wider than a test is set up outside any test's scope: what
        # it wrote would outlive its module (or session) and leak into every
        # later test, in whatever order they run. It gets a scope of its own,
        # rolled back as soon as it is made; a write is refused.
        database = self.database
        if fixturedef.scope == "function" or database is None or fixturedef.argname.startswith(_RUNNERS_OWN):
            return (yield)
        scope = database.begin_scope()
        try:
            result = yield
        finally:
            writes = [sql for each in (scope, *scope.databases.values()) for sql in each.queries
                      if is_write(sql, None)]
            database.end_scope(scope)
        if writes:
            raise SqltxError(
                f"the {fixturedef.scope}-scoped fixture {fixturedef.argname!r} wrote to the database "
                f"({_short(writes[0])}) outside any test's transaction: its rows would stay for every later test "
                "of the run, in whatever order they run, so nose2-sqltx rolled them back. Make the fixture "
                "function-scoped (each test gets the rows, rolled back after it), put the rows in the run's "
                "fixtures (the fixtures key), or make them in a DatabaseTest class's setUpTestData")
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Generator[None, Any, Any]:
        report = yield
        if call.excinfo is not None and self.database is not None:
            self.database.annotate(call.excinfo.value)
            if self.database.lost is not None:
                item.session.shouldstop = f"{PREFIX}: the run's connection was lost"
        return report

    def test_scope(self, request: Any) -> Iterator[Scope | None]:
        """A scope for a test that is not a DatabaseTest (the fixture below)."""
        database = self.database
        if database is None or _is_database_test(request.node):
            yield None
            return
        real = wants_real_commits(request.node.cls, getattr(request.node, "obj", None))
        stray = self.settings.only_database_tests and not allows_database(request.node.cls,
                                                                         getattr(request.node, "obj", None))
        scope = database.begin_scope(real_commits=real, label=request.node.nodeid, stray=stray)
        try:
            yield scope
        finally:
            database.end_scope(scope)  # a problem is this test's error, at teardown


def _is_database_test(item: Any) -> bool:
    cls = getattr(item, "cls", None)
    return isinstance(cls, type) and issubclass(cls, DatabaseTest)


def _async_test_class(items: list[Any]) -> str | None:
    for item in items:
        cls = getattr(item, "cls", None)
        if isinstance(cls, type) and issubclass(cls, AsyncDatabaseTest):
            return f"{cls.__module__}.{cls.__qualname__}"
    return None


def _short(sql: str) -> str:
    line = " ".join(sql.split())
    return line if len(line) <= 80 else line[:77] + "..."


@pytest.fixture(autouse=True)
def _sqltx_test_scope(request: Any) -> Iterator[Scope | None]:
    """Every test that is not a DatabaseTest runs in a scope of its own, as
    under nose2: app code that reaches the database through redirected
    engines or ``nose2_sqltx.current()`` is isolated too. First set up and
    last torn down among the test's fixtures."""
    plugin = request.config.pluginmanager.get_plugin("sqltx-run")
    if plugin is None:
        yield None
        return
    yield from plugin.test_scope(request)


def _scope(scope: Scope | None, request: Any) -> Scope:
    """The test's scope, for the fixtures below; None: say why there is none."""
    if scope is None:
        if request.config.pluginmanager.get_plugin("sqltx-run") is None:
            raise _not_active(f"the fixture {request.fixturename}")
        raise SqltxError(f"the fixture {request.fixturename} is for test functions; a DatabaseTest has "
                         "self.session, self.connection and self.engine")
    return scope


@pytest.fixture
def sqltx_session(_sqltx_test_scope: Scope | None, request: Any) -> Any:
    """An ORM Session in this test's transaction (its commits are savepoints, undone after the test)."""
    return _scope(_sqltx_test_scope, request).session


@pytest.fixture
def sqltx_connection(_sqltx_test_scope: Scope | None, request: Any) -> Any:
    """A Connection in this test's transaction."""
    return _scope(_sqltx_test_scope, request).connection


@pytest.fixture
def sqltx_engine(_sqltx_test_scope: Scope | None, request: Any) -> Any:
    """An Engine whose every connection is this test's transaction (for app code that connects by itself)."""
    return _scope(_sqltx_test_scope, request).engine


@pytest.fixture
def sqltx_databases(_sqltx_test_scope: Scope | None, request: Any) -> Any:
    """This test's scopes on the run's other databases (``[sqltx:<name>]``),
    by name: ``sqltx_databases["analytics"].session``."""
    return _scope(_sqltx_test_scope, request).databases
