#!/usr/bin/env python3
"""Run every benchmark and write docs/benchmarks.md and docs/benchmarks.png.

Runs, one after another, each on its own throwaway server: isolation.py
(per-test cost of the strategies, with the chart), suite.py (whole suites
through nose2), async_tests.py (AsyncDatabaseTest against DatabaseTest),
startup.py (the throwaway server), alembic_start.py (a
schema from 200 Alembic revisions, and the schema cache), parallel.py (serial vs
-N 2), shared_database.py (1, 2 and 4 runs at once on one database),
shards.py (a suite split in 4) and soak.py (20,000 tests, and the control).
Their outputs go into the page as they were printed.

    python bench/report.py            # the numbers in docs/
    python bench/report.py --quick    # fewer rounds and tests: a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def run(args: list[str]) -> str:
    command = [sys.executable, *args]
    print("$ python " + " ".join(args), file=sys.stderr)
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and tests (a smoke run)")
    args = parser.parse_args()
    q = args.quick
    iso = ["bench/isolation.py", "--rounds", "2" if q else "7", "--batch", "10" if q else "40",
           "--markdown", "docs/isolation.md", "--chart", "docs/benchmarks.png"]
    suite = ["bench/suite.py", "--tests", "100" if q else "1000", "--tables", "30", "--rounds", "1"]
    startup = ["bench/startup.py", "--rounds", "3" if q else "15", "--tables", "100"]
    alembic = ["bench/alembic_start.py", "--rounds", "3" if q else "9"]
    parallel = ["bench/parallel.py", "--rounds", "2" if q else "5", "--per-class", "40,100" if q else "40,400"]
    shared = ["bench/shared_database.py", "--rounds", "2" if q else "5"]
    shards = ["bench/shards.py", "--rounds", "1" if q else "3"]
    soak = ["bench/soak.py", "--tests", "2000" if q else "20000"]
    async_tests = ["bench/async_tests.py", "--rounds", "2" if q else "7", "--tests", "20" if q else "60"]
    run(iso)
    isolation = (DOCS / "isolation.md").read_text().split("\n", 2)[2]  # drop its title
    (DOCS / "isolation.md").unlink()
    sections = [
        ("Whole suites through nose2", suite, run(suite)),
        ("AsyncDatabaseTest against DatabaseTest: whole unittest test cases", async_tests, run(async_tests)),
        ("The throwaway server: start-up (including create_all of 100 tables) and stop", startup, run(startup)),
        ("A schema from 200 Alembic revisions: start to first test, and the schema cache", alembic, run(alembic)),
        ("Parallel runs: serial against -N 2", parallel, run(parallel)),
        ("Runs sharing one database: 1, 2 and 4 at once", shared, run(shared)),
        ("A suite split into 4 shards: by test counts and by the durations file", shards, run(shards)),
        ("Savepoints do not pile up, and long runs stay fast: 20,000 tests in one run", soak, run(soak)),
    ]
    page = [
        "# Benchmarks",
        "",
        f"All figures below come from one run of `python bench/report.py{' --quick' if q else ''}` on "
        f"{datetime.date.today().isoformat()} ({platform.machine()}, Python {platform.python_version()}); "
        "each benchmark starts a throwaway PostgreSQL server of its own. The machine is shared and noisy: "
        "compare strategies within one table (they ran interleaved), not across runs.",
        "",
        "## Per-test cost of isolation strategies",
        "",
        isolation.strip(),
        "",
        "![per-test cost of isolation strategies](benchmarks.png)",
    ]
    for title, command, output in sections:
        page += ["", f"## {title}", "", f"`python {' '.join(command)}`", "", "```", output, "```"]
    (DOCS / "benchmarks.md").write_text("\n".join(page) + "\n")
    print(f"wrote {DOCS / 'benchmarks.md'} and {DOCS / 'benchmarks.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
