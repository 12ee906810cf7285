"""``python -m unittest``: the first ``DatabaseTest`` class opens the run; the process's end closes it.

unittest has no plugins and no hook at the start or the end of a run, so
the run opens when the first ``DatabaseTest`` class is set up (settings
from the same ``[sqltx]`` section and environment as under nose2 and
pytest) and closes when the process ends (``atexit``): rolled back, the
throwaway server stopped, and the summary line printed after unittest's
report. Ctrl-C and SIGTERM stop the tests, roll back and end the process
as the signal would have.

What is weaker than under nose2, and why: tests that are not
``DatabaseTest`` get no scope of their own (unittest calls nothing around
them); a problem found when the run closes (a commit that escaped the
run's transaction, a table left behind) can only be printed after
unittest's report and turn the exit status to 1; and the run's driver is
matched to the ``AsyncDatabaseTest`` classes already imported when it
opens (``discover`` imports every test module first, so all of them).
"""

from __future__ import annotations

import atexit
import os
import sys
import unittest
from typing import Any

from .async_testcase import AsyncDatabaseTest
from .config import Settings
from .config_files import find_section
from .connection import defer_stop
from .errors import NotActiveError, SqltxError
from .isolation import IsolatedDatabase, explain_inactive
from .messages import PREFIX
from .signals import Interrupted, StopSignals
from .testcase import when_not_running
from .testrun import TestRun

__unittest = True

__all__ = ["open_run", "install"]


class _State:
    run: TestRun | None = None
    #: the error the first opening raised: every later class gets it too, without a second try
    failed: SqltxError | None = None
    signals = StopSignals(defer=defer_stop)


def install() -> None:
    """Make :func:`open_run` the opener of a run for ``DatabaseTest`` classes."""
    when_not_running(open_run)
    explain_inactive(_no_run)


def _no_run(what: str) -> Exception:
    if "nose2.main" in sys.modules:
        return NotActiveError(what)  # nose2 runs the tests, without the plugin: how to load it
    return NotActiveError(what, runner="unittest")


def open_run(what: str) -> IsolatedDatabase:
    """Open the run for the first test class of the process that asks (``what``: its kind)."""
    if "nose2.main" in sys.modules:
        raise _no_run(what)  # nose2's plugin (not loaded, or switched off) would have opened it
    if _State.failed is not None:
        raise _State.failed
    try:
        section = find_section(os.getcwd())
        if section is not None and not section.active:
            raise NotActiveError(what, runner="unittest", switched_off_in=section.path)
        settings = Settings.from_options(section.options if section is not None else (),
                                         databases=section.databases if section is not None else ())
        if settings.shard is not None and settings.shard.total > 1:
            print(f"{PREFIX}: warning: shard {settings.shard} (from {settings.shard.source}) is not taken: "
                  "python -m unittest has no hook to choose the tests it runs, so this process runs all it was "
                  "given; run the shards under nose2 or pytest", file=sys.stderr)
        if settings.only_database_tests:
            print(f"{PREFIX}: warning: only-database-tests is not applied: python -m unittest calls nothing around "
                  "a test that is not a DatabaseTest, so such a test cannot be told apart; run the suite under nose2 "
                  "or pytest to have it checked", file=sys.stderr)
        run = TestRun(settings)
        _State.signals.install()
        database = run.start(async_tests=_async_test_class())
        database.outside_tests = "unittest"
    except SqltxError as exc:
        _State.signals.restore()
        _State.failed = exc
        raise
    except BaseException:
        _State.signals.restore()
        raise
    _State.run = run
    atexit.register(_close)
    previous_hook = sys.excepthook

    def quiet_stop(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if not isinstance(value, Interrupted):  # a stop is said in one line at the end, not a traceback
            previous_hook(kind, value, tb)

    sys.excepthook = quiet_stop
    return database


def _async_test_class() -> str | None:
    """An AsyncDatabaseTest test class imported so far (``discover`` imports them all before the first runs)."""
    pending = list(AsyncDatabaseTest.__subclasses__())
    while pending:
        cls = pending.pop()
        if issubclass(cls, unittest.IsolatedAsyncioTestCase):
            return f"{cls.__module__}.{cls.__qualname__}"
        pending.extend(cls.__subclasses__())
    return None


def _close() -> None:
    """At the process's end: roll back, stop the server, say how it went."""
    run, _State.run = _State.run, None
    if run is None:
        return
    stopped = _State.signals.received
    _State.signals.restore()
    problems = run.stop()
    sys.stdout.flush()
    for problem in problems:
        print(f"{PREFIX}: error: {problem}", file=sys.stderr)
    if run.summary():
        print(run.summary(), file=sys.stderr)
    if stopped is not None:
        print(f"{PREFIX}: stopped by {stopped.label}; the run's transaction was rolled back", file=sys.stderr)
        sys.stderr.flush()
        _State.signals.die(stopped)
    if problems:
        sys.stderr.flush()
        os._exit(1)  # the exit status is all that is left to say it with
