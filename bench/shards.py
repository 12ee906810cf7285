#!/usr/bin/env python3
"""Shards of one suite: the union is exactly the suite, and the durations file balances them.

The suite is generated: 30 test classes whose sizes and test times have
nothing to do with each other (a class of 3 slow tests, a class of 40 quick
ones), each test writing a row and waiting on the server as a real test
waits on its database. One whole run writes the durations file; then each
of 4 shards runs on its own, by test counts alone (no file) and with the
file. Every shard's tests are collected from its output: no test may run in
two shards or in none. A shard's time is the tests' time as nose2 reports it
("Ran N tests in T s"), without the process start all shards pay alike.

    python bench/shards.py --rounds 3               # throwaway server
    SQLTX_DSN=postgresql://... python bench/shards.py
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import benchmark_database
from nose2_sqltx.environment import SHARD_ENV
from nose2_sqltx.sharding import CI_VARIABLES

SHARDS = 4
CLASSES = 30
RAN = re.compile(r"^Ran (\d+) tests? in ([\d.]+)s$", re.M)
OUTCOME = re.compile(r"\(([\w.]+)\) \.\.\. ok$", re.M)

MODELS = '''from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "bench_row"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(40))
'''

CLASS = '''

class Test{i:02d}(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.session.add(Row(label="class {i}"))
        cls.session.commit()
'''
TEST = '''
    def test_{j:02d}(self):
        self.session.add(Row(label="{i}.{j}"))
        self.session.commit()
        self.connection.exec_driver_sql("SELECT pg_sleep({seconds})")
'''


def make_suite(directory: Path, seed: int) -> int:
    """Write the generated suite into ``directory``; return its number of tests."""
    rng = random.Random(seed)
    (directory / "bench_models.py").write_text(MODELS)
    (directory / "unittest.cfg").write_text("[unittest]\nplugins = nose2_sqltx\n\n[sqltx]\n"
                                            "metadata = bench_models:Base\ndurations = durations.json\n")
    modules: list[list[str]] = [[] for _ in range(5)]
    total = 0
    for i in range(CLASSES):
        tests = rng.choice([2, 3, 5, 8, 12, 20, 30, 40])
        seconds = rng.choice([0.001, 0.002, 0.005, 0.01, 0.02, 0.04])
        body = CLASS.format(i=i) + "".join(TEST.format(i=i, j=j, seconds=seconds) for j in range(tests))
        modules[i % 5].append(body)
        total += tests
    for n, bodies in enumerate(modules):
        (directory / f"test_gen{n}.py").write_text(
            "import unittest\n\nfrom bench_models import Row\n\nfrom nose2_sqltx import DatabaseTest\n"
            + "".join(bodies))
    return total


def run(directory: Path, env: dict[str, str], *args: str) -> tuple[float, list[str]]:
    """One nose2 run: the tests' time, and the ids of the tests that passed."""
    proc = subprocess.run([sys.executable, "-m", "nose2", "-v", *args], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=900)
    ran = RAN.search(proc.stderr)
    if proc.returncode != 0 or ran is None:
        sys.exit(f"unexpected result:\n{proc.stderr[-3000:]}")
    return float(ran.group(2)), OUTCOME.findall(proc.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each shard in each mode (default 3)")
    args = parser.parse_args()
    times: dict[str, list[list[float]]] = {"test counts": [[] for _ in range(SHARDS)],
                                           "durations file": [[] for _ in range(SHARDS)]}
    with benchmark_database() as (dsn, extra), tempfile.TemporaryDirectory(prefix="sqltx-bench-shards-") as tmp:
        env = {**os.environ, "SQLTX_DSN": dsn, "PYTHONPATH": str(ROOT), **extra}
        for name in (SHARD_ENV, *(index for _, index, _, _ in CI_VARIABLES)):  # the shards are chosen here
            env.pop(name, None)
        directory = Path(tmp)
        total = make_suite(directory, seed=11)
        whole_time, whole = run(directory, env)  # writes durations.json
        if len(whole) != total:
            sys.exit(f"the whole run passed {len(whole)} of {total} tests")
        durations = (directory / "durations.json").read_bytes()
        for mode in times:
            for round_no in range(args.rounds):
                seen: list[str] = []
                for i in range(1, SHARDS + 1):
                    if mode == "durations file":
                        (directory / "durations.json").write_bytes(durations)
                    else:
                        (directory / "durations.json").unlink(missing_ok=True)
                    took, passed = run(directory, env, "--sqltx-shard", f"{i}/{SHARDS}")
                    times[mode][i - 1].append(took)
                    seen += passed
                if sorted(seen) != sorted(whole):
                    sys.exit(f"{mode}, round {round_no + 1}: the shards ran {len(seen)} tests "
                             f"({len(set(seen))} distinct) of the suite's {len(whole)}")
    where = "SQLTX_DSN" if os.environ.get("SQLTX_DSN") else "throwaway server"
    print(f"{total} tests in {CLASSES} classes, {SHARDS} shards, {args.rounds} rounds, {os.cpu_count()} cores, "
          f"{where}; the whole suite: {whole_time:.2f} s")
    print(f"the union of the {SHARDS} shards was exactly the suite in every round (no test twice, none missing)")
    print(f"{'split by':15} " + " ".join(f"{f'shard {i}':>8}" for i in range(1, SHARDS + 1))
          + f" {'slowest/mean':>13}")
    for mode, per_shard in times.items():
        medians = [statistics.median(values) for values in per_shard]
        print(f"{mode:15} " + " ".join(f"{m:8.2f}" for m in medians)
              + f" {max(medians) / statistics.mean(medians):12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
