"""The schema cache: the statements that built a run's schema, kept to build the next run's without migrations.

A run on PostgreSQL builds its schema inside its own transaction, in a
schema of its own. With a long Alembic history, most of that time is
Alembic's: loading every revision script and running its operations one
by one. The statements those operations send are the same from one run to
the next as long as what produced them is the same. So the first build is
recorded (every statement the driver was sent, with its parameters, the
run's own schema names replaced by a placeholder), and the next build, in
the next run or after a repair in this one, replays the recording inside
the run's transaction: the same schema, the same rows in
``alembic_version``, the same sequences, and the run's isolation exactly as
it is without the cache, since the recording is only a faster way of
sending the same statements.

The recording is kept in a file, one per source (an alembic.ini, or a set
of metadata tables) and database dialect, under the cache directory
(``SQLTX_CACHE_DIR``, by default ``~/.cache/nose2-sqltx``), with the key
of what produced it:

- with Alembic: the contents of alembic.ini and of every file of its
  script location and version locations, and of the modules of the
  project (not of an installed package or the standard library) that
  env.py and the revision scripts import, directly or through one another;
- with metadata: the DDL ``create_all`` would send;
- and for both: the driver, the server's major version, the schemas the
  run keeps of its own, and this format's version.

A recording whose key no longer matches is built again from the source,
recorded, and replaces the old one. A recording that fails to replay is
rolled back to a savepoint, and the schema built from the source instead.
Neither costs more than the build the cache would have saved; the run's
summary says what happened. ``check-migrations`` compares the schema with
the models after every build, replayed or not.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, create_mock_engine, event

from .messages import first_line
from .postmaster import cache_root

__unittest = True

__all__ = ["SchemaCache", "alembic_sources", "default_cache_directory"]

#: the version of the recording files: a new one is a key that no longer matches
FORMAT = 1
#: what stands for the run's own schema name in a recording: a random name
#: (``sqltx_run_<hex>``) that is different in every run
PLACEHOLDER = "\x1esqltx-namespace\x1e"
#: a savepoint of the run's own around a replay, rolled back if the replay fails
REPLAY_SAVEPOINT = "sqltx_schema_cache"
#: how many recordings a cache directory keeps: the ones used least recently go
#: (a metadata's tables renamed, a project gone: a recording nothing replaces)
KEEP = 32
_JSON_SCALARS = (str, int, float, bool, type(None))


def default_cache_directory() -> Path:
    """Where recordings live: ``schemas`` in the cache directory of the throwaway server's initdb copies."""
    return cache_root() / "schemas"


@dataclass
class Recording:
    """The statements one build sent: ``(statement, parameters, executemany)``."""

    statements: list[tuple[str, Any, bool]] = field(default_factory=list)
    #: why the recording cannot be kept (a parameter JSON cannot hold), if it cannot
    unkeepable: str | None = None

    @contextmanager
    def record(self, conn: Connection, namespace: str | None) -> Iterator[None]:
        """Record what ``conn`` sent to the driver while the block runs (after
        every rewrite: a migration's names of named schemas, given the run's)."""

        def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            try:
                params = _plain(parameters)
            except TypeError as exc:
                self.unkeepable = self.unkeepable or str(exc)
                params = None
            many = _many(parameters, executemany, context)
            self.statements.append((_hide(statement, namespace), _hide(params, namespace), many))

        event.listen(conn, "after_cursor_execute", seen)
        try:
            yield
        finally:
            event.remove(conn, "after_cursor_execute", seen)

    def replay(self, conn: Connection, namespace: str | None) -> None:
        """Send the recorded statements on ``conn`` again: those without
        parameters straight to the run's connection, as many at once as its
        driver takes (one round trip where it can), the others as they were sent."""
        send = getattr(conn.connection.dbapi_connection, "sqltx_send", None)
        pending: list[str] = []

        def flush() -> None:
            if pending and send is not None:
                # one statement of the run's; each ; on a line of its own, after the end of any closing -- comment
                send(("\n;\n".join(pending),))
            pending.clear()

        for statement, params, executemany in self.statements:
            sql = _show(statement, namespace)
            if send is not None and not params and "%" not in sql and not executemany:
                # (no parameters and no %: whether the driver interpolates or not, the text is the same)
                pending.append(sql)
                continue
            flush()
            given = _show(params, namespace)
            if executemany:
                conn.exec_driver_sql(sql, [_as_given(p) for p in given])
            else:
                conn.exec_driver_sql(sql, _as_given(given))
        flush()


class SchemaCache:
    """Recordings of schema builds in ``directory`` (see the module's docs).

    One per database of a run: :meth:`build` is called with each build of
    its schema, which the first time looks for the file, and later replays
    what the first built.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_directory()
        #: how the run's first build went: "replayed" (from the file), "recorded" (into it), or None (not yet)
        self.state: str | None = None
        #: what the run's summary says of the cache besides its state (one line): why it was not used, or replaced
        self.note: str | None = None
        self._recording: Recording | None = None
        self._key: str | None = None

    def build(self, conn: Connection, *, source: str, key: Callable[[], Sequence[object]],
              make: Callable[[], None], namespace: str | None) -> None:
        """Build the schema on ``conn``: by replaying a recording of ``source``
        whose ``key()`` matches, else by ``make()``, recorded for the next time."""
        path = self.directory / f"{hashlib.sha256(source.encode()).hexdigest()[:24]}.json"
        if self._recording is None:
            self._key = hashlib.sha256(json.dumps([FORMAT, *key()], default=str).encode()).hexdigest()
            recording, self.note = self._load(path, self._key)
            if recording is None:
                self._record(conn, path, make, namespace)
                return
            self._recording = recording
            if self._replay(conn, recording, namespace):
                self.state = "replayed"
                with suppress(OSError):
                    os.utime(path)  # (used: the last to go)
                return
        elif self._replay(conn, self._recording, namespace):
            return
        self._record(conn, path, make, namespace)

    def _replay(self, conn: Connection, recording: Recording, namespace: str | None) -> bool:
        conn.exec_driver_sql(f"SAVEPOINT {REPLAY_SAVEPOINT}")
        try:
            recording.replay(conn, namespace)
        except Exception as exc:  # noqa: BLE001 - the driver's own errors too: whatever failed, build from the source
            conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {REPLAY_SAVEPOINT}")
            self.note = (f"the schema cache's recording failed to replay ({first_line(exc)}), so the schema was "
                         "built from its source and recorded again")
            return False
        conn.exec_driver_sql(f"RELEASE SAVEPOINT {REPLAY_SAVEPOINT}")
        return True

    def _record(self, conn: Connection, path: Path, make: Callable[[], None], namespace: str | None) -> None:
        recording = Recording()
        with recording.record(conn, namespace):
            make()
        self._recording = recording
        if recording.unkeepable is not None:
            self.note = f"the schema cache cannot keep this build: {recording.unkeepable}"
            return
        problem = self._store(path, recording)
        if problem is None:
            self.state = self.state or "recorded"
        self.note = problem or self.note

    def _load(self, path: Path, key: str) -> tuple[Recording | None, str | None]:
        """The recording at ``path`` if its key is ``key``; else None and why
        it was not used (None: there was none)."""
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"{path} could not be read: {exc.strerror or exc}"
        try:
            data = json.loads(raw)
            if data.get("key") != key:
                return None, ("the schema cache's recording no longer matched what builds the schema (a migration, "
                              "the models, the driver or the server changed), and was replaced")
            statements = [(str(s), p, bool(m)) for s, p, m in data["statements"]]
        except (ValueError, TypeError, KeyError, AttributeError):
            return None, f"{path} was not a recording nose2-sqltx can read, and was replaced"
        return Recording(statements), None

    def _store(self, path: Path, recording: Recording) -> str | None:
        """Write ``recording`` to ``path`` (atomically); why it could not be, if it could not."""
        assert self._key is not None
        partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({"format": FORMAT, "key": self._key, "statements": recording.statements}),
                               encoding="utf-8")
            os.replace(partial, path)
            _evict(path.parent, KEEP)
        except OSError as exc:
            with suppress(OSError):
                partial.unlink(missing_ok=True)
            return (f"the schema cache {path.parent} cannot be written ({exc.strerror or exc}), so every run "
                    "builds its schema from the source: point SQLTX_CACHE_DIR at a writable directory")
        return None


def _evict(directory: Path, keep: int) -> None:
    """Remove all but the ``keep`` recordings of ``directory`` used last, and
    what writes that were killed left (an hour old)."""
    recordings = []
    for path in directory.glob("*.json"):
        with suppress(OSError):
            recordings.append((path.stat().st_mtime, path))
    stale = [path for _, path in sorted(recordings, reverse=True)[keep:]]
    for path in directory.glob("*.json.partial-*"):
        with suppress(OSError):
            if time.time() - path.stat().st_mtime > 3600:
                stale.append(path)
    for path in stale:
        with suppress(OSError):
            path.unlink()


def metadata_ddl(metadata: Iterable[MetaData], dialect: Any) -> list[str]:
    """The DDL ``create_all`` sends for ``metadata`` on ``dialect``, as text (a key of the cache)."""
    out: list[str] = []

    def collect(sql: Any, *args: Any, **kwargs: Any) -> None:
        out.append(str(sql.compile(dialect=dialect)))

    engine = create_mock_engine(f"{dialect.name}://", collect)
    for one in metadata:
        one.create_all(engine, checkfirst=False)
    return out


def alembic_sources(ini: str) -> list[tuple[str, str]]:
    """What an Alembic build depends on, as (path, sha256 of the contents),
    sorted: alembic.ini, every file of its script and version locations, and
    the project's modules those import (a key of the cache). Empty without
    Alembic installed (the build says so)."""
    try:
        from alembic.config import Config
        from alembic.script import ScriptDirectory
        from alembic.util import coerce_resource_to_filename
    except ImportError:
        return []
    # (reads the locations only: the revisions load when asked for)
    script = ScriptDirectory.from_config(Config(ini))
    roots = [Path(script.dir)] + [Path(coerce_resource_to_filename(location))
                                  for location in script.version_locations or ()]
    files = {Path(ini).resolve()}
    for root in roots:
        if root.is_dir():
            files.update(p.resolve() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    files.update(_project_imports([f for f in files if f.suffix == ".py"]))
    return [(str(f), hashlib.sha256(f.read_bytes()).hexdigest()) for f in sorted(files)]


def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update({sys.prefix, sys.base_prefix, sys.exec_prefix})
    return tuple(str(Path(r).resolve()) for r in roots)


def _project_imports(scripts: list[Path]) -> set[Path]:
    """The project's modules ``scripts`` import, directly or through one
    another (not installed packages nor the standard library)."""
    installed = _installed_roots()
    found: set[Path] = set()
    todo = list(scripts)
    seen = set(scripts)
    while todo:
        script = todo.pop()
        try:
            tree = ast.parse(script.read_bytes(), str(script))
        except (SyntaxError, ValueError, OSError):
            continue  # (the build reports it, if it matters)
        for name in _imported_names(tree):
            origin = _origin(name)
            if origin is None or origin in seen or str(origin).startswith(installed):
                continue
            seen.add(origin)
            found.add(origin)
            todo.append(origin)
    return found


def _imported_names(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _origin(name: str) -> Path | None:
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            return None
        origin = spec.origin if spec is not None and spec.has_location else None
    if not origin or not origin.endswith(".py"):
        return None
    return Path(origin).resolve()


def _many(parameters: Any, executemany: bool, context: Any) -> bool:
    """Whether the driver was given several parameter sets (an executemany).
    A mapping is one, and a sequence of mappings several, whatever the event
    says (SQLAlchemy 2.0 reports some of psycopg2's executemany calls as one
    execution); else SQLAlchemy's execute style
    says, where it has one: an INSERT of many rows in one statement is
    reported as executemany, and is one execution."""
    if hasattr(parameters, "items"):
        return False
    if isinstance(parameters, (list, tuple)) and parameters and all(hasattr(p, "items") for p in parameters):
        return True
    style = getattr(getattr(context, "execute_style", None), "name", None)
    return executemany if style is None else style == "EXECUTEMANY"


def _plain(value: Any) -> Any:
    """``value`` as JSON holds it (dicts and sequences of scalars); TypeError if it cannot be."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise TypeError(f"a statement's parameter is a {type(value).__name__}, which the recording cannot hold")


def _as_given(params: Any) -> Any:
    """A recorded parameter set as the driver was given it (a positional one as a tuple)."""
    return tuple(params) if isinstance(params, list) else params


def _hide(value: Any, namespace: str | None) -> Any:
    if namespace is None:
        return value
    if isinstance(value, str):
        return value.replace(namespace, PLACEHOLDER)
    if isinstance(value, dict):
        return {k: _hide(v, namespace) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide(v, namespace) for v in value]
    return value


def _show(value: Any, namespace: str | None) -> Any:
    if isinstance(value, str):
        return value.replace(PLACEHOLDER, namespace or "")
    if isinstance(value, dict):
        return {k: _show(v, namespace) for k, v in value.items()}
    if isinstance(value, list):
        return [_show(v, namespace) for v in value]
    return value
