#!/usr/bin/env python3
"""Start to first test with a schema from a long Alembic history, on the throwaway server.

Generates an Alembic project of ``--revisions`` revisions over ``--tables``
tables (the first revisions create the tables, each with a foreign key to
the one before; the rest add a column and an index, round the tables), then
times, each round, from nothing to the first test's savepoint: the server's
start (cold: an empty initdb cache; warm: a cached one), connecting, and
``alembic upgrade head`` in the run's transaction. A third kind is warm
with the schema cache, whose recording of the build (made before the
rounds) is replayed instead of running the migrations. Rounds interleave
the kinds. Prints the median and the p10-p90 spread of each, in seconds,
and of the schema's build alone, from the migrations and from the cache.

    python bench/alembic_start.py --rounds 7 --revisions 200 --tables 60
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nose2_sqltx
from bench.common import print_spread, timed
from nose2_sqltx import IsolatedDatabase, TemporaryPostgres

ENV_PY = '''from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
'''

REVISION = '''"""revision {number}"""
import sqlalchemy as sa
from alembic import op

revision = "r{number:04d}"
down_revision = {down}


def upgrade():
{body}
'''


def _body(number: int, tables: int) -> str:
    if number < tables:
        parent = f', sa.Column("parent_id", sa.Integer, sa.ForeignKey("t{number - 1}.id"))' if number else ""
        return (f'    op.create_table("t{number}", sa.Column("id", sa.Integer, primary_key=True), '
                f'sa.Column("name", sa.String(50)){parent})')
    table = number % tables
    return (f'    op.add_column("t{table}", sa.Column("c{number}", sa.String(20)))\n'
            f'    op.create_index("ix_t{table}_c{number}", "t{table}", ["c{number}"])')


def make_project(directory: Path, revisions: int, tables: int) -> Path:
    """An Alembic project in ``directory``; returns its alembic.ini."""
    versions = directory / "migrations" / "versions"
    versions.mkdir(parents=True)
    (directory / "migrations" / "env.py").write_text(ENV_PY)
    (directory / "migrations" / "script.py.mako").write_text("")
    for number in range(revisions):
        down = f'"r{number - 1:04d}"' if number else "None"
        (versions / f"r{number:04d}.py").write_text(
            REVISION.format(number=number, down=down, body=_body(number, tables)))
    ini = directory / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    return ini


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each kind (default 7)")
    parser.add_argument("--revisions", type=int, default=200, help="Alembic revisions (default 200)")
    parser.add_argument("--tables", type=int, default=60, help="tables they make (default 60)")
    args = parser.parse_args()
    if args.revisions < args.tables:
        parser.error("--revisions must be at least --tables (the first revisions create the tables)")
    kinds = {"cold": "cold: start to first test", "warm": "warm: start to first test",
             "cached": "warm, schema cache: start to first test"}
    samples: dict[str, list[float]] = {k: [] for k in (*kinds.values(), "migrations alone",
                                                       "schema cache's replay alone")}
    with tempfile.TemporaryDirectory(prefix="sqltx-bench-alembic-") as tmp:
        ini = make_project(Path(tmp) / "project", args.revisions, args.tables)
        warm_cache = Path(tmp) / "warm-cache"
        os.environ["SQLTX_CACHE_DIR"] = str(warm_cache)
        with TemporaryPostgres() as pg:
            version = pg.version  # (and the warm cache filled)

        schema_cache = Path(tmp) / "schemas"

        def first_test(cached: bool) -> tuple[TemporaryPostgres, IsolatedDatabase]:
            server = TemporaryPostgres()
            server.start()
            database = IsolatedDatabase(server.url, alembic=str(ini), trusted=True,
                                        schema_cache=schema_cache if cached else False)
            database.start()
            database.begin_scope()  # the first test's savepoint
            return server, database

        server, database = first_test(True)  # (the recording the cached rounds replay)
        database.stop()
        server.stop()
        for round_ in range(args.rounds):
            for kind, label in kinds.items():
                os.environ["SQLTX_CACHE_DIR"] = str(Path(tmp) / f"cold-{round_}" if kind == "cold" else warm_cache)
                elapsed, (server, database) = timed(lambda cached=(kind == "cached"): first_test(cached))
                samples[label].append(elapsed)
                build = "schema cache's replay alone" if kind == "cached" else "migrations alone"
                samples[build].append(database.timings.get("schema", 0.0))
                database.stop()
                server.stop()
    print(f"nose2-sqltx {nose2_sqltx.__version__}, PostgreSQL {version}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores; {args.revisions} Alembic revisions over {args.tables} tables, {args.rounds} rounds")
    print_spread(samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
