#!/usr/bin/env python3
"""Per-test cost of AsyncDatabaseTest against DatabaseTest, side by side in one run.

Real unittest test cases, run in this process by unittest's own suite
machinery against an IsolatedDatabase (no nose2: its per-test work would
be the same for every row), each test timed from startTest to stopTest:

  TestCase / IsolatedAsyncioTestCase   no plugin, an empty test: what the
                        runner itself costs per test (unittest makes a new
                        event loop, in debug mode, for each async test)
  ..., on the run's loop               an empty IsolatedAsyncioTestCase run
                        as AsyncDatabaseTest runs its tests (each a task on
                        one RunLoop, through RunLoopRunner), no database
  DatabaseTest, <driver>               a sync driver (psycopg2, psycopg 3)
  AsyncDatabaseTest, <driver>          an async driver (asyncpg, psycopg 3
                        async), each test a task on the run's loop (the
                        default, async-test-loop = run)
  ..., own loop         the same with async-test-loop = own: each test on the
                        loop unittest makes for it, every driver call crossing
                        to the run's loop and back

  driver floor, <driver>               no test: the one statement a test's
                        isolation sends (ROLLBACK TO SAVEPOINT) on the bare
                        driver, the async ones awaited on a loop of their own

Each plugin row runs two test bodies: "scope" touches the test's connection
and nothing else (the test's savepoint, its handles, the rollback: the
isolation overhead), "body" inserts a parent and three children, joins
them and commits (bench/isolation.py's body). The isolation overhead of a
row is its "scope" median less the empty test of the same kind without the
plugin; an async row's is also given against the empty test on the run's
loop, which leaves out what AsyncDatabaseTest's runner saves against
unittest's own (a loop per test; in debug mode, the stack each of its tasks
and callbacks came from). Rows run in rounds, interleaved.

Runs on a throwaway server unless --dsn is given.

    python bench/async_tests.py --rounds 7 --tests 60
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
import unittest
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.common import benchmark_url, chain_schema, spread
from bench.isolation import async_body, body
from nose2_sqltx import AsyncDatabaseTest, DatabaseTest, IsolatedDatabase
from nose2_sqltx.runloop import RunLoop
from nose2_sqltx.testloop import RunLoopRunner, run_test

METADATA = chain_schema(5)

SYNC = ("psycopg2", "psycopg")
ASYNC = ("asyncpg", "psycopg_async")
LABEL = {"psycopg2": "psycopg2", "psycopg": "psycopg 3", "asyncpg": "asyncpg", "psycopg_async": "psycopg 3 async"}
#: each async driver's sync counterpart, for the ratios
FAMILY = {"asyncpg": "psycopg2", "psycopg_async": "psycopg"}


class Timing(unittest.TestResult):
    """Each test's time, from startTest to stopTest."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._started = 0.0

    def startTest(self, test: unittest.TestCase) -> None:
        self._started = time.perf_counter()
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        self.times.append(time.perf_counter() - self._started)


ON_RUN_LOOP = "IsolatedAsyncioTestCase, empty, on the run's loop"


class OnTheRunsLoop(unittest.IsolatedAsyncioTestCase):
    """An IsolatedAsyncioTestCase run as AsyncDatabaseTest runs one, with no
    database: its whole run a task on :attr:`loop`, its phases through a
    RunLoopRunner."""

    loop: RunLoop

    def run(self, result: unittest.TestResult | None = None) -> unittest.TestResult | None:
        return run_test(self.loop, lambda: super(OnTheRunsLoop, self).run(result))

    def _setupAsyncioRunner(self) -> None:
        self._asyncioRunner = RunLoopRunner(self.loop)


#: the one statement a test's isolation sends (its savepoint stays for the next test)
FLOOR_SQL = "ROLLBACK TO SAVEPOINT bench_floor"


def sync_floor(url: URL, driver: str, tests: int) -> list[float]:
    """:data:`FLOOR_SQL`'s time, ``tests`` times, on a bare sync driver connection."""
    engine = sqlalchemy.create_engine(url.set(drivername=f"postgresql+{driver}"), poolclass=NullPool)
    times = []
    try:
        with engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute("SAVEPOINT bench_floor")
            for _ in range(tests):
                started = time.perf_counter()
                cursor.execute(FLOOR_SQL)
                times.append(time.perf_counter() - started)
            conn.rollback()
    finally:
        engine.dispose()
    return times[1:]


def async_floor(url: URL, driver: str, tests: int) -> list[float]:
    """:func:`sync_floor` for an async driver's own connection, awaited on a loop of its own."""

    async def timed() -> list[float]:
        engine = create_async_engine(url.set(drivername=f"postgresql+{driver}"), poolclass=NullPool)
        times = []
        try:
            async with engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                if driver == "asyncpg":
                    await raw.execute("BEGIN")  # (psycopg begins one on its own)
                await raw.execute("SAVEPOINT bench_floor")
                for _ in range(tests):
                    started = time.perf_counter()
                    await raw.execute(FLOOR_SQL)
                    times.append(time.perf_counter() - started)
                await (raw.execute("ROLLBACK") if driver == "asyncpg" else raw.rollback())
        finally:
            await engine.dispose()
        return times[1:]

    return asyncio.run(timed())


def case(bases: tuple[type, ...], method: Callable[..., Any], tests: int) -> type:
    return type("Bench", bases, {f"test_{i:04d}": method for i in range(tests)})


def timed_run(cls: type, name: str) -> list[float]:
    result = Timing()
    unittest.defaultTestLoader.loadTestsFromTestCase(cls).run(result)
    if not result.wasSuccessful():
        sys.exit(f"{name}: {(result.errors + result.failures)[0][1]}")
    return result.times[1:]  # the first test warms the caches


def sync_scope(self: Any) -> None:
    self.connection  # noqa: B018 - made on first use, as in a test


def sync_body(self: Any) -> None:
    body(self.connection, METADATA)


async def async_scope(self: Any) -> None:
    self.connection  # noqa: B018


async def async_whole(self: Any) -> None:
    await async_body(self.connection, METADATA)


def empty(self: Any) -> None:
    pass


async def async_empty(self: Any) -> None:
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--tests", type=int, default=60, help="tests per row per round (default 60)")
    parser.add_argument("--dsn", help="a PostgreSQL URL to use instead of a throwaway server")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}
    version = ""
    with benchmark_url(args.dsn) as url:
        for _ in range(args.rounds):
            samples.setdefault("TestCase, empty", []).extend(
                timed_run(case((unittest.TestCase,), empty, args.tests), "TestCase"))
            samples.setdefault("IsolatedAsyncioTestCase, empty", []).extend(
                timed_run(case((unittest.IsolatedAsyncioTestCase,), async_empty, args.tests), "async"))
            with RunLoop() as loop:
                OnTheRunsLoop.loop = loop
                samples.setdefault(ON_RUN_LOOP, []).extend(
                    timed_run(case((OnTheRunsLoop,), async_empty, args.tests), "on the run's loop"))
            rows: list[tuple[str, str, str, tuple[type, ...], tuple[Callable[..., Any], Callable[..., Any]]]] = [
                (f"DatabaseTest, {LABEL[d]}", d, "run", (DatabaseTest, unittest.TestCase), (sync_scope, sync_body))
                for d in SYNC]
            for driver in ASYNC:
                for loop in ("run", "own"):
                    rows.append((f"AsyncDatabaseTest, {LABEL[driver]}{', own loop' if loop == 'own' else ''}",
                                 driver, loop, (AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase),
                                 (async_scope, async_whole)))
            for name, driver, loop, bases, (scope, whole) in rows:
                with IsolatedDatabase(url.set(drivername=f"postgresql+{driver}"), metadata=[METADATA], trusted=True,
                                      schema=f"bench_async_tests_{driver}", async_test_loop=loop) as database:
                    version = database.server_version
                    samples.setdefault(f"{name}, scope", []).extend(timed_run(case(bases, scope, args.tests), name))
                    samples.setdefault(f"{name}, body", []).extend(timed_run(case(bases, whole, args.tests), name))
            for driver in (*SYNC, *ASYNC):
                floor = sync_floor if driver in SYNC else async_floor
                samples.setdefault(f"driver floor, {LABEL[driver]}", []).extend(floor(url, driver, args.tests))
            print(f"round {len(samples['TestCase, empty']) // (args.tests - 1)}/{args.rounds} done", file=sys.stderr)
    print(report(samples, args, version))
    return 0


def report(samples: dict[str, list[float]], args: argparse.Namespace, version: str) -> str:
    median = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    lines = [f"{args.rounds} rounds of {args.tests} tests per row, Python {platform.python_version()}, "
             f"SQLAlchemy {sqlalchemy.__version__}, PostgreSQL {version}; milliseconds per test",
             "", f"{'row':52} {'median':>8} {'p10':>8} {'p90':>8}"]
    for name, values in samples.items():
        mid, p10, p90 = spread(values)
        lines.append(f"{name:52} {mid * 1000:8.3f} {p10 * 1000:8.3f} {p90 * 1000:8.3f}")
    lines += ["", "isolation overhead per test ('scope' less the empty test of the same kind, no plugin; "
              "async rows also less the empty test on the run's loop):"]
    overhead: dict[str, float] = {}
    same_runner: dict[str, float] = {}
    for driver in (*SYNC, *ASYNC):
        for own in ("", ", own loop"):
            if own and driver in SYNC:
                continue
            kind = "DatabaseTest" if driver in SYNC else "AsyncDatabaseTest"
            plain = "TestCase, empty" if driver in SYNC else "IsolatedAsyncioTestCase, empty"
            row = f"{kind}, {LABEL[driver]}{own}"
            overhead[row] = median[f"{row}, scope"] - median[plain]
            line = f"  {row}: {overhead[row]:.3f} ms"
            if driver in ASYNC and not own:
                same_runner[row] = median[f"{row}, scope"] - median[ON_RUN_LOOP]
                line += f"; on the run's loop {same_runner[row]:.3f} ms"
            lines.append(line)
    lines += ["", "isolation overhead beyond the driver floor (what the plugin adds to the driver's own statement; "
              "async rows on the run's loop):"]
    beyond: dict[str, float] = {}
    for driver in (*SYNC, *ASYNC):
        row = f"{'DatabaseTest' if driver in SYNC else 'AsyncDatabaseTest'}, {LABEL[driver]}"
        beyond[row] = (overhead if driver in SYNC else same_runner)[row] - median[f"driver floor, {LABEL[driver]}"]
        lines.append(f"  {row}: {beyond[row]:.3f} ms")
    lines += ["", "async against its sync counterpart (ratio of medians):"]
    for driver in ASYNC:
        sync_row = f"DatabaseTest, {LABEL[FAMILY[driver]]}"
        for own in ("", ", own loop"):
            row = f"AsyncDatabaseTest, {LABEL[driver]}{own}"
            parts = [f"isolation overhead {_ratio(overhead[row], overhead[sync_row])}"]
            if row in same_runner:
                parts.append(f"on the run's loop {_ratio(same_runner[row], overhead[sync_row])}")
                parts.append(f"beyond the driver floor {_ratio(beyond[row], beyond[sync_row])}")
            parts += [f"scope x{median[row + ', scope'] / median[sync_row + ', scope']:.2f}",
                      f"body x{median[row + ', body'] / median[sync_row + ', body']:.2f}"]
            lines.append(f"  {row} against {sync_row}: {', '.join(parts)}")
    return "\n".join(lines)


def _ratio(overhead: float, sync: float) -> str:
    """``overhead`` against ``sync`` as a ratio; none where the async test
    costs no more than the empty test it is measured against (a ratio of a
    negative number would mean nothing)."""
    return f"x{overhead / sync:.2f}" if overhead > 0 else "none (the async test costs less than the empty one)"


if __name__ == "__main__":
    sys.exit(main())
