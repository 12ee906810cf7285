#!/usr/bin/env python3
"""Throwaway-server start-up, measured side by side in one process.

Each round runs, in turn: a cold start (empty cache: initdb), a warm start
(cached data directory), and "plugin start to first test" (warm server
start + connect + run transaction + create_all of a small schema), the
same with the schema cache (the recording of the build, made before the
rounds, replayed instead of create_all), and times each stop. Rounds interleave the kinds so that machine drift hits all
of them alike. Prints the median and the p10-p90 spread of each, in seconds.

    python bench/startup.py --rounds 15
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
from bench.common import chain_schema, print_spread, timed
from nose2_sqltx import IsolatedDatabase, TemporaryPostgres
from nose2_sqltx.postmaster import default_base_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds of each kind (default 15)")
    parser.add_argument("--tables", type=int, default=5, help="tables created in 'start to first test' (default 5)")
    args = parser.parse_args()
    metadata = chain_schema(args.tables)
    samples: dict[str, list[float]] = {k: [] for k in ("cold start", "warm start", "start to first test",
                                                       "start to first test, schema cache", "stop")}
    with tempfile.TemporaryDirectory(prefix="sqltx-bench-cache-") as warm_cache:
        os.environ["SQLTX_CACHE_DIR"] = warm_cache
        schema_cache = os.path.join(warm_cache, "schemas")

        def first_test(cached: bool) -> tuple[TemporaryPostgres, IsolatedDatabase]:
            server = TemporaryPostgres()
            server.start()
            database = IsolatedDatabase(server.url, metadata=[metadata], trusted=True,
                                        schema_cache=schema_cache if cached else False)
            database.start()
            database.begin_scope()  # the first test's savepoint
            return server, database

        server, database = first_test(True)  # fill the warm cache, and record the schema's build
        database.stop()
        server.stop()
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="sqltx-bench-cold-") as cold_cache:
                os.environ["SQLTX_CACHE_DIR"] = cold_cache
                pg = TemporaryPostgres()
                samples["cold start"].append(timed(pg.start)[0])
                pg.stop()  # not timed: a cold stop also waits for the cache copy
            os.environ["SQLTX_CACHE_DIR"] = warm_cache
            pg = TemporaryPostgres()
            samples["warm start"].append(timed(pg.start)[0])
            samples["stop"].append(timed(pg.stop)[0])

            for cached, label in ((False, "start to first test"), (True, "start to first test, schema cache")):
                elapsed, (server, database) = timed(lambda cached=cached: first_test(cached))
                samples[label].append(elapsed)
                database.stop()
                server.stop()
    print(f"nose2-sqltx {nose2_sqltx.__version__}, PostgreSQL {pg.version}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores, server directory under {default_base_dir()}, {args.rounds} rounds")
    print_spread(samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
