#!/usr/bin/env python3
"""Per-test cost of test isolation strategies, side by side in one run.

Every strategy runs the same test body: insert a parent row and three child
rows, one join query, commit. Strategies run in rounds, interleaved, so that
machine drift hits all of them alike; each round times a batch of tests of
every strategy at every table count (tables chained by foreign keys).

  plugin            what DatabaseTest does per test: the test's savepoint,
                    its Connection, the body, the rollback (nose2-sqltx core)
  plugin, reset-sequences
                    the same with reset-sequences on: the sequences the body
                    moved are put back after each test
  scope only        the same without the body: the isolation overhead
  create/drop       create_all + body + drop_all per test
  delete            body + DELETE FROM every table
  truncate          body + one TRUNCATE ... CASCADE of every table
  sqlite memory     a new in-memory SQLite database, create_all + body
  template db       CREATE DATABASE ... TEMPLATE + connect + body + DROP DATABASE
  savepoint (SA)    SQLAlchemy's begin_nested() + body + rollback()
  body only         the body, nothing undone (the floor for the body)
  driver floor      SAVEPOINT + ROLLBACK TO SAVEPOINT on the bare driver

psycopg2 runs every strategy; plugin, scope only, body only and driver floor
also run on psycopg 3 in the same rounds ("..., psycopg 3"), and plugin and
scope only on the async drivers, asyncpg and psycopg 3's async connection
("..., asyncpg", "..., psycopg 3 async"): what an AsyncDatabaseTest does,
the whole test a task on the run's loop, its AsyncConnection, the async
body as a task in debug mode (IsolatedAsyncioTestCase's), the rollback
(bench/async_tests.py times whole unittest test cases, and the other
loop). "driver floor, asyncpg" is SAVEPOINT + ROLLBACK TO SAVEPOINT on a
bare asyncpg connection, awaited on a loop of this thread's.

Runs on a throwaway server (nothing touches a shared one) unless --dsn is
given; every strategy works in a schema of its own, removed at the end.
Writes a markdown table (--markdown) and a chart (--chart, needs matplotlib).

    python bench/isolation.py --rounds 7 --markdown docs/benchmarks.md --chart docs/benchmarks.png
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy
from sqlalchemy import MetaData, create_engine, insert, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool, StaticPool

import nose2_sqltx
from bench.common import chain_schema, spread
from nose2_sqltx import IsolatedDatabase, TemporaryPostgres, unwatched
from nose2_sqltx.testloop import RunLoopRunner, run_test

PG3 = ", psycopg 3"
ASYNCPG = ", asyncpg"
PG3_ASYNC = ", psycopg 3 async"
RESET = "plugin, reset-sequences"
STRATEGIES = ("plugin", RESET, "scope only", "create/drop", "delete", "truncate", "sqlite memory", "template db",
              "savepoint (SA)", "body only", "driver floor",
              "plugin" + PG3, "scope only" + PG3, "body only" + PG3, "driver floor" + PG3,
              "plugin" + ASYNCPG, "scope only" + ASYNCPG, "driver floor" + ASYNCPG,
              "plugin" + PG3_ASYNC, "scope only" + PG3_ASYNC)
# Strategies that need the run's IsolatedDatabase started (one per process at a time).
PLUGIN = {"plugin": "psycopg2", RESET: "reset", "scope only": "psycopg2", "plugin" + PG3: "psycopg",
          "scope only" + PG3: "psycopg", "plugin" + ASYNCPG: "asyncpg", "scope only" + ASYNCPG: "asyncpg",
          "plugin" + PG3_ASYNC: "psycopg_async", "scope only" + PG3_ASYNC: "psycopg_async"}
SLOW = {"create/drop", "template db"}  # fewer tests per batch: each takes tens of ms


def body(conn: sqlalchemy.Connection, metadata: MetaData) -> None:
    parent, child = metadata.tables["t0"], metadata.tables["t1"]
    pid = conn.execute(insert(parent).values(name="p").returning(parent.c.id)).scalar_one()
    conn.execute(insert(child), [{"name": f"c{j}", "parent_id": pid} for j in range(3)])
    conn.execute(select(parent.c.name, child.c.name).join(child, child.c.parent_id == parent.c.id)).all()
    conn.commit()


async def async_body(conn: Any, metadata: MetaData) -> None:
    """:func:`body`, awaited on an AsyncConnection."""
    parent, child = metadata.tables["t0"], metadata.tables["t1"]
    pid = (await conn.execute(insert(parent).values(name="p").returning(parent.c.id))).scalar_one()
    await conn.execute(insert(child), [{"name": f"c{j}", "parent_id": pid} for j in range(3)])
    (await conn.execute(select(parent.c.name, child.c.name).join(child, child.c.parent_id == parent.c.id))).all()
    await conn.commit()


def outside(*args: Any, **kwargs: Any) -> sqlalchemy.Engine:
    """An engine for the comparison strategies: deliberately outside the
    running IsolatedDatabase, so its leak check lets it write."""
    return unwatched(create_engine(*args, **kwargs))


def in_schema(url: URL, name: str) -> sqlalchemy.Engine:
    """An engine whose connections use schema ``name`` (created, committed)."""
    engine = outside(url, poolclass=StaticPool, connect_args={"options": f"-c search_path={name}"})
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {name}"))
    return engine


class Setup:
    """Per table count: the objects each strategy needs, made once."""

    def __init__(self, url: URL, tables: int, runner: asyncio.Runner) -> None:
        self.url, self.tables = url, tables
        self.runner = runner
        self.metadata = chain_schema(tables)
        self.plugins = {
            # trusted: the benchmark's own server (or database); the comparison
            # strategies write through engines of their own, deliberately.
            driver: IsolatedDatabase(url.set(drivername=f"postgresql+{driver}"), metadata=[self.metadata], trusted=True,
                                     schema=f"bench_plugin_{driver}_{tables}")
            for driver in ("psycopg2", "psycopg", "asyncpg", "psycopg_async")
        }
        self.plugins["reset"] = IsolatedDatabase(url.set(drivername="postgresql+psycopg2"), metadata=[self.metadata],
                                                 trusted=True, schema=f"bench_plugin_reset_{tables}",
                                                 reset_sequences=True)
        self.engines: dict[str, sqlalchemy.Engine] = {}
        for key in ("create", "delete", "savepoint", "body"):
            self.engines[key] = in_schema(url, f"bench_{key}_{tables}")
        self.engines["body3"] = in_schema(url.set(drivername="postgresql+psycopg"), f"bench_body3_{tables}")
        for key in ("delete", "savepoint", "body", "body3"):
            self.metadata.create_all(self.engines[key])
        self.conns = {key: engine.connect() for key, engine in self.engines.items()}
        names = ", ".join(t.name for t in self.metadata.sorted_tables)
        self.truncate_sql = text(f"TRUNCATE {names} CASCADE")
        self.template = f"bench_template_{tables}"
        admin = outside(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {self.template}"))
            conn.execute(text(f"CREATE DATABASE {self.template}"))
        self.admin = admin
        tpl = outside(url.set(database=self.template), poolclass=NullPool)
        self.metadata.create_all(tpl)
        tpl.dispose()
        self.running: IsolatedDatabase | None = None

    def strategies(self) -> dict[str, Callable[[], None]]:
        md, conns = self.metadata, self.conns

        def plugin() -> None:
            # The nose2 hooks' work for one DatabaseTest: open the test's scope,
            # use its Connection, roll back.
            assert self.running is not None
            scope = self.running.begin_scope()
            body(scope.connection, md)
            self.running.end_scope(scope)

        def scope_only() -> None:
            assert self.running is not None
            scope = self.running.begin_scope()
            scope.connection  # noqa: B018 - made on first use, as in a test
            self.running.end_scope(scope)

        def create_drop() -> None:
            conn = conns["create"]
            md.create_all(conn)
            conn.commit()
            body(conn, md)
            md.drop_all(conn)
            conn.commit()

        def delete() -> None:
            conn = conns["delete"]
            body(conn, md)
            for table in reversed(md.sorted_tables):
                conn.execute(table.delete())
            conn.commit()

        def truncate() -> None:
            conn = conns["delete"]
            body(conn, md)
            conn.execute(self.truncate_sql)
            conn.commit()

        def sqlite_memory() -> None:
            engine = outside("sqlite://", poolclass=StaticPool)
            with engine.connect() as conn:
                md.create_all(conn)
                body(conn, md)
            engine.dispose()

        def template_db() -> None:
            name = f"bench_copy_{self.tables}"
            with self.admin.connect() as admin:
                admin.execute(text(f"CREATE DATABASE {name} TEMPLATE {self.template}"))
            engine = outside(self.url.set(database=name), poolclass=NullPool)
            with engine.connect() as conn:
                body(conn, md)
            engine.dispose()
            with self.admin.connect() as admin:
                admin.execute(text(f"DROP DATABASE {name}"))

        def savepoint_sa() -> None:
            conn = conns["savepoint"]
            nested = conn.begin_nested()
            parent, child = md.tables["t0"], md.tables["t1"]
            pid = conn.execute(insert(parent).values(name="p").returning(parent.c.id)).scalar_one()
            conn.execute(insert(child), [{"name": f"c{j}", "parent_id": pid} for j in range(3)])
            conn.execute(select(parent.c.name, child.c.name).join(child, child.c.parent_id == parent.c.id)).all()
            nested.rollback()

        def on_the_runs_loop(with_body: bool) -> Callable[[], None]:
            # An AsyncDatabaseTest's (async-test-loop = run): the whole test a
            # task on the run's loop (one hop from this thread and back), the
            # scope opened and ended there, the body a task of its own in
            # debug mode, as IsolatedAsyncioTestCase runs it.
            def test() -> None:
                assert self.running is not None
                scope = self.running.begin_scope()
                runner = RunLoopRunner(self.running.backend.loop)
                connection = scope.async_connection
                if with_body:
                    runner.run(async_body(connection, md))
                runner.close()
                self.running.end_scope(scope)

            def run() -> None:
                assert self.running is not None
                run_test(self.running.backend.loop, test)

            return run

        def floor(key: str) -> Callable[[], None]:
            cursor = conns[key].connection.dbapi_connection.cursor()

            def driver_floor() -> None:
                cursor.execute("SAVEPOINT f")
                cursor.execute("ROLLBACK TO SAVEPOINT f")

            return driver_floor

        return {"plugin": plugin, RESET: plugin, "scope only": scope_only, "create/drop": create_drop, "delete": delete,
                "truncate": truncate, "sqlite memory": sqlite_memory, "template db": template_db,
                "savepoint (SA)": savepoint_sa, "body only": lambda: body(conns["body"], md),
                "driver floor": floor("body"), "plugin" + PG3: plugin, "scope only" + PG3: scope_only,
                "body only" + PG3: lambda: body(conns["body3"], md), "driver floor" + PG3: floor("body3"),
                "plugin" + ASYNCPG: on_the_runs_loop(True), "scope only" + ASYNCPG: on_the_runs_loop(False),
                "driver floor" + ASYNCPG: self.asyncpg_floor, "plugin" + PG3_ASYNC: on_the_runs_loop(True),
                "scope only" + PG3_ASYNC: on_the_runs_loop(False)}

    def asyncpg_floor(self) -> None:
        self.runner.run(self._asyncpg_floor())

    async def _asyncpg_floor(self) -> None:
        conn = self.__dict__.get("_asyncpg")
        if conn is None:
            import asyncpg

            url = self.url
            conn = self.__dict__["_asyncpg"] = await asyncpg.connect(
                user=url.username, password=url.password, database=url.database, host=url.host or url.query.get("host"),
                port=url.port or int(url.query.get("port", 5432)))
            await conn.execute("BEGIN")
        await conn.execute("SAVEPOINT f")
        await conn.execute("ROLLBACK TO SAVEPOINT f")

    def close(self) -> None:
        if self.running is not None:
            self.running.stop()
        raw = self.__dict__.pop("_asyncpg", None)
        if raw is not None:
            self.runner.run(raw.close())
        for conn in self.conns.values():
            conn.rollback()
            conn.close()
        for key, engine in self.engines.items():
            with engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS bench_{key}_{self.tables} CASCADE"))
            engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {self.template}"))
            conn.execute(text(f"DROP DATABASE IF EXISTS bench_copy_{self.tables}"))
        self.admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--batch", type=int, default=40,
                        help="tests per strategy per round (default 40; 5 for slow ones)")
    parser.add_argument("--tables", default="5,30,100", help="table counts (default 5,30,100)")
    parser.add_argument("--dsn", help="a PostgreSQL URL to use instead of a throwaway server")
    parser.add_argument("--markdown", type=Path, help="write the results as a markdown page here")
    parser.add_argument("--chart", type=Path, help="write a PNG chart here (needs matplotlib)")
    args = parser.parse_args()
    counts = [int(n) for n in args.tables.split(",")]

    server = None
    if args.dsn:
        url = make_url(args.dsn)
    else:
        server = TemporaryPostgres()
        server.start()
        url = server.url
    url = url.set(drivername="postgresql+psycopg2")
    samples: dict[tuple[str, int], list[float]] = {(s, n): [] for s in STRATEGIES for n in counts}
    setups: list[Setup] = []
    runner = asyncio.Runner()  # the driver floor's loop
    try:
        setups = [Setup(url, n, runner) for n in counts]
        version = ""
        for round_no in range(args.rounds):
            for setup in setups:
                fns = setup.strategies()
                order = list(STRATEGIES) if round_no % 2 == 0 else list(reversed(STRATEGIES))
                for name in order:
                    if name in PLUGIN:
                        setup.running = setup.plugins[PLUGIN[name]]
                        setup.running.start()
                        version = setup.running.server_version
                    fn = fns[name]
                    fn()  # warm: the first call of a batch compiles and caches
                    for _ in range(5 if name in SLOW else args.batch):
                        started = time.perf_counter()
                        fn()
                        samples[(name, setup.tables)].append(time.perf_counter() - started)
                    if setup.running is not None:
                        setup.running.stop()
                        setup.running = None
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for setup in setups:
            setup.close()
        runner.close()
        if server is not None:
            server.stop()

    rows = report(samples, counts, version, args)
    print("\n".join(rows))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(rows) + "\n")
    if args.chart:
        chart(samples, counts, args.chart)
    return 0


def report(samples: dict[tuple[str, int], list[float]], counts: list[int], version: str,
           args: argparse.Namespace) -> list[str]:
    med = {key: spread(values)[0] for key, values in samples.items()}
    where = "a throwaway server (nose2-sqltx's own)" if not args.dsn else "the server given with --dsn"
    rows = [
        "# Benchmarks: per-test cost of isolation strategies",
        "",
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {version} ({where}), SQLAlchemy {sqlalchemy.__version__}, "
        f"psycopg2 and psycopg 3, nose2-sqltx {nose2_sqltx.__version__}; {args.rounds} rounds of "
        f"{args.batch} tests per strategy (5 for create/drop and template db), strategies interleaved.",
        "",
        "Reproduce: `python bench/isolation.py " + " ".join(a for a in sys.argv[1:]) + "`",
        "",
        "Milliseconds per test: median (p10–p90), and the median's ratio to the plugin's.",
        "",
        "| strategy | " + " | ".join(f"{n} tables" for n in counts) + " |",
        "| --- | " + " | ".join("---" for _ in counts) + " |",
    ]
    for name in STRATEGIES:
        cells = []
        for n in counts:
            m, p10, p90 = spread(samples[(name, n)])
            cells.append(f"{m * 1000:.3f} ({p10 * 1000:.3f}–{p90 * 1000:.3f}) ×{m / med[('plugin', n)]:.2f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    rows += ["", "Isolation overhead per test (scope only: the test's savepoint, its Connection, the rollback) "
             "against the driver floor (SAVEPOINT + ROLLBACK TO SAVEPOINT):", ""]
    for suffix, driver in (("", "psycopg2"), (PG3, "psycopg 3")):
        parts = []
        for n in counts:
            overhead, floor = med[("scope only" + suffix, n)], med[("driver floor" + suffix, n)]
            parts.append(f"{n} tables {overhead * 1000:.3f} ms = {overhead / floor:.2f}× the floor "
                         f"({floor * 1000:.3f} ms)")
        rows.append(f"- {driver}: " + "; ".join(parts))
    rows += ["", "Async against sync, same rounds (ratio of medians; the goal: within ×1.3):", ""]
    for name in ("plugin", "scope only"):
        for suffix, against, label in ((ASYNCPG, "", "asyncpg against psycopg2"),
                                       (PG3_ASYNC, PG3, "psycopg 3 async against psycopg 3")):
            ratios = ", ".join(f"{n} tables ×{med[(name + suffix, n)] / med[(name + against, n)]:.2f}" for n in counts)
            rows.append(f"- {name}, {label}: {ratios}")
    rows.append("- driver floor, asyncpg against psycopg2: " + ", ".join(
        f"{n} tables ×{med[('driver floor' + ASYNCPG, n)] / med[('driver floor', n)]:.2f}" for n in counts))
    rows += ["", "reset-sequences: the plugin's test with the sequences it moved put back after it:", ""]
    rows.append("- " + "; ".join(
        f"{n} tables {med[(RESET, n)] * 1000:.3f} ms, {(med[(RESET, n)] - med[('plugin', n)]) * 1000:+.3f} ms "
        f"(×{med[(RESET, n)] / med[('plugin', n)]:.2f}) against the plugin without it" for n in counts))
    rows += ["", "psycopg 3 against psycopg2, same rounds (ratio of medians):", ""]
    for name in ("plugin", "scope only", "body only", "driver floor"):
        ratios = ", ".join(f"{n} tables ×{med[(name + PG3, n)] / med[(name, n)]:.2f}" for n in counts)
        rows.append(f"- {name}: {ratios}")
    return rows


def chart(samples: dict[tuple[str, int], list[float]], counts: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 6))
    width = 0.8 / len(counts)
    for i, n in enumerate(counts):
        meds = [spread(samples[(s, n)])[0] * 1000 for s in STRATEGIES]
        xs = [x + i * width for x in range(len(STRATEGIES))]
        ax.bar(xs, meds, width, label=f"{n} tables")
    ax.set_yscale("log")
    ax.set_ylabel("ms per test (median, log scale)")
    ax.set_xticks([x + width * (len(counts) - 1) / 2 for x in range(len(STRATEGIES))])
    ax.set_xticklabels(STRATEGIES, rotation=30, ha="right")
    ax.set_title("nose2-sqltx: per-test cost of isolation strategies")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
