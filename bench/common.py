"""What the benchmarks share: the schema they build and how they summarise."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table
from sqlalchemy.engine import URL, make_url


def chain_schema(tables: int) -> MetaData:
    """``tables`` tables t0..tN, each with a foreign key to the one before."""
    metadata = MetaData()
    for i in range(tables):
        cols = [Column("id", Integer, primary_key=True), Column("name", String(50))]
        if i:
            cols.append(Column("parent_id", ForeignKey(f"t{i - 1}.id")))
        Table(f"t{i}", metadata, *cols)
    return metadata


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, 10th and 90th percentile, each within the samples' range
    (quantiles' default method extrapolates past it: a p10 below the fastest
    sample, even below zero, from a few spread samples)."""
    deciles = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else [values[0]] * 9
    return statistics.median(values), deciles[0], deciles[-1]


def timed(fn):
    """(seconds ``fn()`` took, its result)."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def print_spread(samples: dict[str, list[float]]) -> None:
    """One line per kind: its median, p10 and p90, in seconds."""
    width = max(len(name) for name in samples) + 2
    print(f"{'':{width}} {'median':>8} {'p10':>8} {'p90':>8}")
    for name, values in samples.items():
        median, p10, p90 = spread(values)
        print(f"{name:{width}} {median:8.3f} {p10:8.3f} {p90:8.3f}")


@contextmanager
def benchmark_database() -> Iterator[tuple[str, dict[str, str]]]:
    """The database the benchmark's nose2 runs use: SQLTX_DSN's, or a throwaway
    server of the benchmark's own for as long as the block runs. Yields the URL
    and the environment variables the runs need (the production guard lets
    them use the benchmark's own server's ``postgres`` database)."""
    dsn = os.environ.get("SQLTX_DSN")
    if dsn:
        yield dsn, {}
        return
    from nose2_sqltx import TemporaryPostgres

    with TemporaryPostgres() as server:
        yield server.url.render_as_string(hide_password=False), {"SQLTX_ALLOW_DATABASE": "postgres"}


@contextmanager
def benchmark_url(dsn: str | None) -> Iterator[URL]:
    """The URL of ``dsn`` (``--dsn``), or of a throwaway server of the
    benchmark's own for as long as the block runs."""
    if dsn:
        yield make_url(dsn)
        return
    from nose2_sqltx import TemporaryPostgres

    with TemporaryPostgres() as server:
        yield server.url
