"""Assertions on the SQL a block sends: how many statements (exactly, or at
most), counting all of them or those that match a pattern or touch a table,
and statements sent again and again (the N+1 pattern of lazy loading).

Each assertion is a context manager over a scope's query log
(:attr:`Scope.queries`), usable with ``with`` and, in an
``AsyncDatabaseTest``, ``async with``; ``DatabaseTest`` gives them as
``assertNumQueries``, ``assertMaxQueries`` and ``assertNoRepeatedQueries``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from .messages import PREFIX

if TYPE_CHECKING:
    from .scopes import Scope

__unittest = True

__all__ = ["QueryCount", "RepeatedQueries", "QueryFilter", "normalise", "tables_touched", "call_site", "queries_note"]

# A quoted string, a number standing alone, or a bound parameter in any
# driver's style: what varies between two runs of one statement.
_VALUES = re.compile(
    r"""'(?:[^']|'')*'"""                      # 'text'
    r"""|%\(\w+\)s|%s|\?|\$\d+|:(?<!::)\w+"""   # %(name)s, %s, ?, $1, :name
    r"""|(?<![\w$."])\d+(?:\.\d+)?(?![\w$])"""  # 42, 4.2
)
_IN_LIST = re.compile(r"\bIN\s*\((?:\s*\?\s*,?)+\)|\bIN\s*\(__\[POSTCOMPILE_\w+\]\)", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
# FROM a, b JOIN c ... / INSERT INTO a / UPDATE a / DELETE FROM a
_NAME = r"""(?:[\w$]+|"[^"]+"|`[^`]+`)(?:\.(?:[\w$]+|"[^"]+"|`[^`]+`))?"""
_ALIAS = r"(?:\s+(?:AS\s+)?(?!(?:WHERE|JOIN|ON|GROUP|ORDER|LIMIT|INNER|LEFT|RIGHT|FULL|CROSS|SET|VALUES)\b)[\w$]+)?"
_TABLES = re.compile(rf"\b(?:FROM|JOIN|INTO|UPDATE)\s+({_NAME}{_ALIAS}(?:\s*,\s*{_NAME}{_ALIAS})*)", re.IGNORECASE)
_ONE_NAME = re.compile(_NAME)


def normalise(statement: str) -> str:
    """``statement`` with its values and parameters as ``?``, ``IN`` lists
    as ``IN (...)`` and white space as one blank: two runs of one statement
    with other values are the same text."""
    text = _VALUES.sub("?", statement)
    text = _IN_LIST.sub("IN (...)", text)
    return _SPACE.sub(" ", text).strip()


def tables_touched(statement: str) -> set[str]:
    """The tables a statement names after FROM, JOIN, INTO or UPDATE, lower
    case, without schema or quotes."""
    found: set[str] = set()
    for match in _TABLES.finditer(statement):
        for part in match.group(1).split(","):
            name = _ONE_NAME.match(part.strip())
            if name is not None:
                found.add(name.group(0).split(".")[-1].strip('"`').lower())
    return found


def queries_note(queries: list[str]) -> str:
    """What ``show-queries`` adds to a failed test's report: the SQL the
    test sent, in order (its ``setUp``'s included)."""
    if not queries:
        return f"{PREFIX}: the test sent no SQL"
    return f"{PREFIX}: the test sent {len(queries)} statement(s):\n{_numbered(queries)}"


def _numbered(queries: list[str]) -> str:
    return "\n".join(f"{i}. {sql}" for i, sql in enumerate(queries, 1))


class QueryFilter:
    """Which statements count: those whose text matches ``matching`` (a
    regular expression, searched case-insensitively) and that touch
    ``table`` (a name, or a ``Table`` or mapped class); both when both are
    given, every statement when neither is."""

    def __init__(self, matching: str | re.Pattern[str] | None = None, table: Any = None) -> None:
        if isinstance(matching, str):
            try:
                matching = re.compile(matching, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"matching={matching!r} is not a regular expression: {exc}") from exc
        self.pattern = matching
        self.table = _table_name(table) if table is not None else None

    def __call__(self, statement: str) -> bool:
        if self.pattern is not None and not self.pattern.search(statement):
            return False
        return self.table is None or self.table in tables_touched(statement)

    def describe(self) -> str:
        parts = []
        if self.pattern is not None:
            parts.append(f"matching {self.pattern.pattern!r}")
        if self.table is not None:
            parts.append(f"touching {self.table}")
        return " " + " and ".join(parts) if parts else ""


def _table_name(table: Any) -> str:
    if isinstance(table, str):
        return table.split(".")[-1].strip('"`').lower()
    found = getattr(table, "__table__", table)  # a mapped class, or a Table
    name = getattr(found, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"table={table!r}: give a table's name, a Table or a mapped class")
    return name.lower()


class _Block:
    """A ``with`` (or ``async with``) block over ``scope``'s query log."""

    def __init__(self, test: Any, scope: Scope) -> None:
        self.test = test
        self.scope = scope
        self.start = 0

    def __enter__(self) -> None:
        self.start = len(self.scope.queries)

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:  # else the block's own error is the one to report
            self.check(self.scope.queries[self.start:])

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.__exit__(kind)

    def check(self, sent: list[str]) -> None:
        raise NotImplementedError


class QueryCount(_Block):
    """What ``assertNumQueries`` and ``assertMaxQueries`` return: fails
    ``test`` unless exactly (``at_most``: at most) ``num`` statements that
    ``counted`` lets through were sent inside the block. The failure lists
    them."""

    def __init__(self, test: Any, scope: Scope, num: int, *, at_most: bool = False,
                 counted: QueryFilter | None = None) -> None:
        super().__init__(test, scope)
        if not isinstance(num, int) or isinstance(num, bool) or num < 0:
            raise ValueError(f"the number of queries must be a whole number, 0 or more (got {num!r})")
        self.num = num
        self.at_most = at_most
        self.counted = counted or QueryFilter()

    def check(self, sent: list[str]) -> None:
        counted = [sql for sql in sent if self.counted(sql)]
        if len(counted) > self.num or (not self.at_most and len(counted) < self.num):
            expected = f"at most {self.num}" if self.at_most else f"{self.num}"
            self.test.fail(f"{len(counted)} queries{self.counted.describe()} sent, {expected} expected"
                           + (f":\n{_numbered(counted)}" if counted else ""))


class RepeatedQueries(_Block):
    """What ``assertNoRepeatedQueries`` returns: fails ``test`` when one
    statement (:func:`normalise`\\ d: its values aside) was sent more than
    ``limit`` times inside the block, the N+1 pattern of a lazy load in a
    loop. The failure prints each such statement, how often it ran and from
    where (the app's own lines: :func:`call_site`)."""

    def __init__(self, test: Any, scope: Scope, limit: int, counted: QueryFilter | None = None) -> None:
        super().__init__(test, scope)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be a whole number, 1 or more (got {limit!r})")
        self.limit = limit
        self.counted = counted or QueryFilter()
        self.sites: list[tuple[str, str]] = []  # (normalised statement, call site) in order

    def __enter__(self) -> None:
        super().__enter__()
        self.scope.watches.append(self.saw)

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if self.saw in self.scope.watches:
            self.scope.watches.remove(self.saw)
        super().__exit__(kind)

    def saw(self, statement: str) -> None:
        if self.counted(statement):
            self.sites.append((normalise(statement), call_site()))

    def check(self, sent: list[str]) -> None:
        runs: dict[str, list[str]] = {}
        for statement, site in self.sites:
            runs.setdefault(statement, []).append(site)
        repeated = {statement: sites for statement, sites in runs.items() if len(sites) > self.limit}
        if not repeated:
            return
        lines = [f"{len(repeated)} statement(s) sent more than {self.limit} time(s){self.counted.describe()} "
                 "(an N+1 pattern? load the rows in one query: selectinload, joinedload, or one IN query)"]
        for statement, sites in repeated.items():
            lines.append(f"- {len(sites)} times: {statement}")
            counts: dict[str, int] = {}
            for site in sites:
                counts[site] = counts.get(site, 0) + 1
            lines += [f"    from {site}" + (f" ({n} times)" if n > 1 else "") for site, n in counts.items()]
        self.test.fail("\n".join(lines))


# -- where a statement came from -------------------------------------------------
_PACKAGE = str(Path(__file__).resolve().parent)


def _skipped() -> tuple[str, ...]:
    files = (getattr(sys.modules.get(name), "__file__", None)
             for name in ("sqlalchemy", "greenlet", "asyncio", "unittest", "concurrent"))
    return tuple(str(Path(file).resolve().parent) for file in files if isinstance(file, str))


def call_site() -> str:
    """``path:line in function`` of the innermost frame that is the app's or
    the test's (not SQLAlchemy's, nose2-sqltx's, asyncio's or unittest's),
    through greenlets: SQLAlchemy's async layer runs the sync code in one
    whose caller is suspended in another."""
    skipped = (_PACKAGE, *_skipped())
    for frame in _frames():
        filename = frame.f_code.co_filename
        if filename.startswith("<") or filename.startswith(skipped):
            continue
        if _is_stdlib(filename):
            continue
        return f"{_shown(filename)}:{frame.f_lineno} in {frame.f_code.co_name}"
    return "(no frame of the app's or the test's)"


def _frames() -> Any:
    frame: FrameType | None = sys._getframe(1)
    current = _current_greenlet()
    while True:
        while frame is not None:
            yield frame
            frame = frame.f_back
        if current is None:
            return
        current = current.parent
        if current is None:
            return
        frame = getattr(current, "gr_frame", None)


def _current_greenlet() -> Any:
    getcurrent: Callable[[], Any] | None = getattr(sys.modules.get("greenlet"), "getcurrent", None)
    return getcurrent() if getcurrent is not None else None


_STDLIB = str(Path(re.__file__).resolve().parent)


def _is_stdlib(filename: str) -> bool:
    return filename.startswith(_STDLIB) and "site-packages" not in filename


def _shown(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename
