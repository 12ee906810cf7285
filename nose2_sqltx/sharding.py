"""Splitting a suite across CI machines: every shard picks its part on its own.

A shard is ``I/N``, 1-based (``1/3``, ``2/3``, ``3/3``). It comes from
``--sqltx-shard`` (nose2 and pytest), else ``SQLTX_SHARD``, else the
``shard`` key, else the CI system's own parallelism variables
(:data:`CI_VARIABLES`); ``shard = off`` ignores the CI's variables.

The unit of the split is the test class (a module's function tests are one
unit), so class data, ``setUpClass`` and class fixtures run once per shard.
Every shard sees the same suite and the same durations file, and computes the
same partition from them with no coordination: the units, heaviest first
(ties by name), each given to the shard with the least work so far (ties to
the lowest). A unit's weight is its time in the durations file; a unit the
file does not know weighs its tests times the file's median time per test,
and with no file every test weighs the same.

The durations file (the ``durations`` key) is read before the split and
written after the run with the time of every unit the run ran, merged into
what the file held; each entry says when it was measured, so that the files
of a CI run's shards merge into one (``python -m nose2_sqltx
merge-durations OUT FILE...``: the newest entry of each unit wins). A
corrupt file, or one that knows none of the suite's units (another
suite's), gives a warning and the split by test counts.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
import unittest
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .environment import SHARD_ENV
from .errors import ConfigError
from .messages import PREFIX

__unittest = True

__all__ = ["CI_VARIABLES", "Durations", "Shard", "ShardRun", "choose", "filter_suite", "merge_durations",
           "shard_from_ci", "suite_ids", "unit_of_id", "unit_of_nodeid"]

#: (CI system, index variable, count variable, first index): where CI systems
#: say which of their parallel jobs this is. GitHub Actions has none: pass
#: the matrix value yourself (``SQLTX_SHARD: ${{ matrix.shard }}/4``).
CI_VARIABLES = (
    ("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
    ("GitLab CI", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    ("Buildkite", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),
    ("Bazel", "TEST_SHARD_INDEX", "TEST_TOTAL_SHARDS", 0),
)
#: Bazel's file a test runner touches to say it shards
BAZEL_STATUS_FILE = "TEST_SHARD_STATUS_FILE"
_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
DURATIONS_FORMAT = "nose2-sqltx durations 1"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``total`` (1-based); ``source`` says where it came from."""

    index: int
    total: int
    source: str

    @classmethod
    def parse(cls, raw: str, source: str) -> Shard:
        """``I/N`` from ``source`` (an option, a variable or the key); a :class:`ConfigError` if it is not one."""
        match = _SHARD.fullmatch(raw)
        if match is None:
            raise ConfigError(source, raw, "is not a shard", "Write I/N, counting from 1: 1/3, 2/3 or 3/3")
        index, total = int(match.group(1)), int(match.group(2))
        if total < 1:
            raise ConfigError(source, raw, "splits the suite into no shards", "N is how many shards: 1 or more")
        if not 1 <= index <= total:
            raise ConfigError(source, raw, f"there is no shard {index} of {total}",
                              f"Shards count from 1: 1/{total} to {total}/{total}")
        return cls(index, total, source)

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def shard_from_ci(environ: Mapping[str, str]) -> Shard | None:
    """The shard the CI system's parallelism variables name, if any (Bazel is told the runner shards)."""
    for system, index_var, total_var, first in CI_VARIABLES:
        raw_index, raw_total = environ.get(index_var, "").strip(), environ.get(total_var, "").strip()
        if not raw_index or not raw_total:
            continue
        source = f"{index_var}/{total_var} ({system})"
        if not (raw_index.isdigit() and raw_total.isdigit()):
            raise ConfigError(source, f"{raw_index}/{raw_total}", "is not a job index and count",
                              f"{system} sets them to numbers; unset them, or set {SHARD_ENV}=I/N")
        shard = Shard.parse(f"{int(raw_index) + 1 - first}/{raw_total}", source)
        status = environ.get(BAZEL_STATUS_FILE) if system == "Bazel" else None
        if status:
            Path(status).touch()
        return shard
    return None


def unit_of_id(test_id: str) -> str:
    """The unit of a unittest/nose2 test id: its class (``pkg.mod.Class``), or
    for a function test its module (``pkg.mod``)."""
    return test_id.rsplit(".", 1)[0]


def unit_of_nodeid(nodeid: str) -> str:
    """The unit of a pytest node id: ``path::Class`` for a method, ``path`` for a function."""
    parts = nodeid.split("::")
    return "::".join(parts[:2] if len(parts) >= 3 else parts[:1])


@dataclass
class Durations:
    """The durations file at ``path``: seconds and test count per unit.
    ``problem``: why the file could not be used (a warning, not an error)."""

    path: Path
    units: dict[str, tuple[float, int]] = field(default_factory=dict)
    problem: str | None = None
    #: when each unit's entry was measured (seconds since the epoch)
    measured: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Durations:
        """The file's durations; none (and no problem) if it does not exist yet."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return cls(path, problem=f"cannot be read ({type(exc).__name__}: {exc})")
        try:
            if not isinstance(data, dict) or data.get("format") != DURATIONS_FORMAT:
                raise ValueError(f"no \"format\": \"{DURATIONS_FORMAT}\"")
            units = {str(k): (float(v["seconds"]), int(v["tests"])) for k, v in data["units"].items()}
            measured = {str(k): float(v.get("at", 0)) for k, v in data["units"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return cls(path, problem=f"is not a durations file ({exc})")
        return cls(path, units, measured=measured)

    def weights(self, units: Mapping[str, int]) -> tuple[dict[str, float], str | None]:
        """Each unit's weight (``units``: unit -> its number of tests), and a
        warning when the file cannot balance this suite."""
        known = {u: self.units[u][0] for u in units if u in self.units}
        problem = self.problem
        if problem is None and self.units and not known:
            problem = "knows none of this suite's test classes (another suite's?)"
        if problem is not None:
            counts = {u: float(n) for u, n in units.items()}
            return counts, f"durations file {self.path} {problem}: split by test counts"
        per_test = [s / t for s, t in self.units.values() if t > 0]
        typical = statistics.median(per_test) if per_test else 1.0
        return {u: known.get(u, n * typical) for u, n in units.items()}, None

    def record(self, times: Mapping[str, tuple[float, int]]) -> None:
        """Write the file: ``times`` (unit -> seconds, tests), measured now, over what it held."""
        # Not through merge(): this run's times are the newest whatever the
        # clock says, and the file's "at" is rounded, so a run started within
        # the same millisecond as the last write would otherwise lose to it.
        self._start_over_if_unreadable()
        now = time.time()
        self.units.update(times)
        self.measured.update(dict.fromkeys(times, now))
        self.save()

    def merge(self, other: Durations) -> None:
        """Take ``other``'s entries that are newer than this file's."""
        self._start_over_if_unreadable()
        for unit, entry in other.units.items():
            if other.measured.get(unit, 0) >= self.measured.get(unit, 0) or unit not in self.units:
                self.units[unit] = entry
                self.measured[unit] = other.measured.get(unit, 0)

    def _start_over_if_unreadable(self) -> None:
        if self.problem is not None:
            self.units, self.measured, self.problem = {}, {}, None

    def save(self) -> None:
        """Write the file, whole, in one step (a reader never sees half of it)."""
        data = {"format": DURATIONS_FORMAT,
                "units": {u: {"seconds": round(s, 4), "tests": t, "at": round(self.measured.get(u, 0), 3)}
                          for u, (s, t) in sorted(self.units.items())}}
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
            os.replace(partial, self.path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            print(f"{PREFIX}: warning: could not write the durations file {self.path}: {exc}", file=sys.stderr)


def merge_durations(out: str | Path, files: Iterable[str | Path]) -> list[str]:
    """Merge durations ``files`` (the shards' of one CI run) into ``out``, the
    newest entry of each unit winning; return a line for each file that was
    no durations file (left out)."""
    merged = Durations(Path(out))
    problems = []
    for name in files:
        durations = Durations.load(name)
        if durations.problem is not None or not Path(name).exists():
            problems.append(f"{name} {durations.problem or 'does not exist'}: left out")
            continue
        merged.merge(durations)
    merged.save()
    return problems


def choose(units: Mapping[str, int], shard: Shard, durations: Durations | None = None) -> tuple[set[str], str | None]:
    """The units of ``units`` (unit -> number of tests) that ``shard`` runs,
    and a warning about the durations file, if it could not be used."""
    weights, warning = (durations.weights(units) if durations is not None
                        else ({u: float(n) for u, n in units.items()}, None))
    loads = [0.0] * shard.total
    mine: set[str] = set()
    for unit in sorted(units, key=lambda u: (-weights[u], u)):
        target = min(range(shard.total), key=lambda i: (loads[i], i))
        loads[target] += weights[unit]
        if target == shard.index - 1:
            mine.add(unit)
    return mine, warning


#: test ids that stand for a module that failed to import: every shard reports them
_LOAD_FAILURES = ("nose2.loader.LoadTestsFailure", "unittest.loader._FailedTest")


class ShardRun:
    """One run's part of the suite and the times of its units.

    ``shard``: the run's shard (None: the whole suite); ``durations``: the
    durations file's path (None: none read or written); ``unit_of``: a test
    id's unit (:func:`unit_of_id`, :func:`unit_of_nodeid`).
    """

    def __init__(self, shard: Shard | None, durations: str | None,
                 unit_of: Callable[[str], str] = unit_of_id) -> None:
        self.shard = shard
        self.durations = Durations.load(durations) if durations else None
        self.unit_of = unit_of
        self._started: dict[str, float] = {}
        self._times: dict[str, tuple[float, int]] = {}

    def keep(self, ids: Iterable[str]) -> tuple[set[str], list[str]]:
        """Which of the test ``ids`` this shard runs, and the lines to print
        (what it runs, and a warning about the durations file)."""
        ids = list(ids)
        if self.shard is None:
            return set(ids), []
        counts: dict[str, int] = {}
        for test_id in ids:
            if not test_id.startswith(_LOAD_FAILURES):
                unit = self.unit_of(test_id)
                counts[unit] = counts.get(unit, 0) + 1
        mine, warning = choose(counts, self.shard, self.durations)
        kept = {t for t in ids if t.startswith(_LOAD_FAILURES) or self.unit_of(t) in mine}
        lines = [f"{PREFIX}: warning: {warning}"] if warning else []
        lines.append(f"{PREFIX}: shard {self.shard} (from {self.shard.source}): {len(mine)} of {len(counts)} "
                     f"test classes, {len(kept)} of {len(ids)} tests")
        return kept, lines

    def started(self, test_id: str, at: float) -> None:
        if self.durations is not None:  # times are kept only for the file
            self._started[test_id] = at

    def stopped(self, test_id: str, at: float) -> None:
        began = self._started.pop(test_id, None)
        if began is not None:
            self.took(test_id, max(at - began, 0.0))

    def took(self, test_id: str, seconds: float, *, new_test: bool = True) -> None:
        """Add ``seconds`` of ``test_id``'s to its unit's time (``new_test``:
        count the test; false for another phase of one counted already)."""
        if self.durations is None:
            return
        unit = self.unit_of(test_id)
        total, tests = self._times.get(unit, (0.0, 0))
        self._times[unit] = (total + seconds, tests + int(new_test))

    def finish(self) -> None:
        """Write the durations file, if there is one and tests ran."""
        if self.durations is not None and self._times:
            self.durations.record(self._times)


def filter_suite(suite: unittest.TestSuite, keep: set[str]) -> unittest.TestSuite:
    """``suite`` with only the tests whose ids are in ``keep`` (its nesting kept)."""
    kept: list[unittest.TestSuite | unittest.TestCase] = []
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            inner = filter_suite(test, keep)
            if inner.countTestCases():
                kept.append(inner)
        elif test.id() in keep:
            kept.append(test)
    return type(suite)(kept)


def suite_ids(suite: unittest.TestSuite) -> list[str]:
    """The ids of every test in ``suite``, in order."""
    ids: list[str] = []
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            ids.extend(suite_ids(test))
        else:
            ids.append(test.id())
    return ids
