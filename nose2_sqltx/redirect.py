"""The application's own engines and sessions, pointed at the test transaction.

Knows nothing about nose2. Real applications import a module-level
``engine``, a ``sessionmaker``/``scoped_session``, or Flask-SQLAlchemy's
``db`` (async apps an ``AsyncEngine``, an ``async_sessionmaker`` or an
``async_scoped_session``, whose sync engine is redirected the same way);
:class:`Redirection` points each of them at the run's connection for the
run and puts them back at the end. An Engine is redirected *in
place* (its pool, dialect and URL become the run's), so every reference the
app holds to it, and every Session bound to it, follows; it stays a real
Engine (reflection, ``engine.dialect``, ``engine.url`` all work).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import ScopedRegistry

from .connect_setup import ConnectSetup, own_connect_listeners
from .errors import ConfigError, UnsupportedObjectError

__unittest = True

__all__ = ["Redirection", "redirect_kind", "factory_engines", "is_flask_sqlalchemy", "translate_over", "ASYNC_KINDS"]

#: the kinds :func:`redirect_kind` gives SQLAlchemy's asyncio objects
ASYNC_KINDS = frozenset({"AsyncEngine", "async_sessionmaker", "async_scoped_session"})


def _asyncio_kind(obj: Any) -> str | None:
    if not type(obj).__module__.startswith("sqlalchemy.ext.asyncio"):
        return None  # not imported for apps that never import it
    from sqlalchemy.ext.asyncio import AsyncEngine, async_scoped_session, async_sessionmaker

    for cls, kind in ((AsyncEngine, "AsyncEngine"), (async_scoped_session, "async_scoped_session"),
                      (async_sessionmaker, "async_sessionmaker")):
        if isinstance(obj, cls):
            return kind
    return None


def factory_engines(factory: Any) -> list[Any]:
    """The engines a session factory (sync or async, scoped or not) binds its
    sessions to; an ``AsyncEngine`` as its sync Engine."""
    factory = getattr(factory, "session_factory", factory)
    kw = factory.kw
    return [getattr(e, "sync_engine", e) for e in [kw.get("bind"), *(kw.get("binds") or {}).values()]]


def is_flask_sqlalchemy(obj: Any) -> bool:
    """Whether ``obj`` is a Flask-SQLAlchemy extension (``db``)."""
    return type(obj).__module__.startswith("flask_sqlalchemy") and hasattr(obj, "_app_engines")


def redirect_kind(obj: Any) -> str | None:
    """What :class:`Redirection` would do with ``obj``, or None if it cannot."""
    if isinstance(obj, Engine):
        return "engine"
    if isinstance(obj, scoped_session):
        return "scoped_session"
    if isinstance(obj, sessionmaker):
        return "sessionmaker"
    if is_flask_sqlalchemy(obj):
        return "Flask-SQLAlchemy"
    return _asyncio_kind(obj)


#: QueuePool's own default, which create_engine() leaves alone unless told
_DEFAULT_POOL_SIZE = inspect.signature(QueuePool.__init__).parameters["pool_size"].default


class _EngineSwap:
    """One Engine pointed at another's pool and URL, and put back.

    The engine keeps its own dialect, and with it the app's options that
    change what is read and written (``json_serializer``, type and dialect
    settings), when it is of the target's kind (the same database and
    driver); the dialect is made ready on the target's connection as a first
    connect would. Otherwise it takes the target's dialect too.
    """

    _FIELDS = ("pool", "dialect", "url", "_compiled_cache")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.saved = {name: getattr(engine, name) for name in self._FIELDS}
        self.saved_options = engine._execution_options
        #: whether the run's connection was made with this engine's setup (:mod:`nose2_sqltx.connect_setup`)
        self.carried = False

    def set_aside(self, target: Engine) -> list[str]:
        """The app's options that cannot apply on the target's one shared
        connection (for the run's report)."""
        own: Any = self.saved["dialect"]
        pool: Any = self.saved["pool"]
        aside = []
        if type(own) is not type(target.dialect):
            aside.append(f"its dialect ({own.name}+{own.driver}, where the run's is "
                         f"{target.dialect.name}+{target.dialect.driver}) with its options")
        if getattr(pool, "_pre_ping", False):
            aside.append("pool_pre_ping")
        if isinstance(pool, QueuePool) and pool.size() != _DEFAULT_POOL_SIZE:
            aside.append("pool_size")
        if not self.carried and own_connect_listeners(self.engine):
            aside.append("its connect listeners (it was made after the run's connection)")
        return aside

    def point(self, target: Engine) -> None:
        own: Any = self.saved["dialect"]
        keep = type(own) is type(target.dialect)
        for name in ("pool", "url") if keep else self._FIELDS:
            setattr(self.engine, name, getattr(target, name))
        self.engine._execution_options = _translated(self.saved_options, target)
        if keep:
            self.engine.dialect = own
            self.engine._compiled_cache = self.saved["_compiled_cache"]
            if not getattr(own, "_sqltx_ready", False):
                with self.engine.connect() as conn:
                    own.initialize(conn)
                own._sqltx_ready = True

    def restore(self) -> None:
        for name, value in self.saved.items():
            setattr(self.engine, name, value)
        self.engine._execution_options = self.saved_options


def _translated(options: Any, target: Engine) -> Any:
    """The app engine's execution ``options`` with the target's
    ``schema_translate_map`` (the run's schemas for named ones) over the app's own."""
    ours = target._execution_options.get("schema_translate_map")
    if not ours:
        return options
    return options.union({"schema_translate_map": translate_over(ours, options.get("schema_translate_map"))})


def translate_over(ours: Mapping[str, str], theirs: Mapping[str | None, str] | None) -> dict[str | None, str]:
    """The run's ``schema_translate_map`` ``ours`` over an app's own,
    ``theirs``, whose names then go where ``ours`` sends them."""
    composed: dict[str | None, str] = {schema: own for schema, own in ours.items()}
    composed.update({k: ours.get(v, v) for k, v in (theirs or {}).items()})
    return composed


class Redirection:
    """The app's engines and session factories, pointed at a target Engine.

    ``objects`` maps a name (for messages) to an Engine, a ``sessionmaker``,
    a ``scoped_session`` or a Flask-SQLAlchemy ``db``. :meth:`point` aims them
    all at ``target`` (and can re-aim them later); :meth:`restore` puts every
    one back as it was. Between scopes, :meth:`end_scope` resets the
    sessions that scoped registries handed out during the scope, so that no
    test sees another's identity map.

    ``flask_session``: ``"app-context"`` (Flask-SQLAlchemy's own scope: a
    Session per app context, as in production) or ``"test"`` (one Session
    for every app context of a test, which the end of an app context does
    not close: the scope of pytest-flask-sqlalchemy and of harnesses like it).

    ``binds``: the Redirections of the run's other databases, by name: an
    engine one of them names (a session factory here with ``binds`` over
    both databases' engines) is left to it, and a Flask-SQLAlchemy ``db``'s
    engine for a bind key (``SQLALCHEMY_BINDS``) goes to the one of that
    name; a bind with none is a :class:`ConfigError` (pointing it here
    would put its tables in the wrong database).
    """

    def __init__(self, objects: Mapping[str, Any], *, flask_session: str = "app-context",
                 binds: Mapping[str, Redirection] | None = None) -> None:
        self.objects = dict(objects)
        self.flask_session = flask_session
        self.binds = dict(binds or {})
        self._swaps: dict[int, _EngineSwap] = {}
        #: called with the dialect of an engine that keeps its own, as it is pointed at the target
        self.on_own_dialect: Callable[[Any], None] | None = None
        #: the app's engine options that cannot apply in the run, as "<engine> <option>"
        self.set_aside: list[str] = []
        self._reported: set[int] = set()
        self._factories: list[tuple[sessionmaker[Any], dict[str, Any]]] = []
        self._registries: list[scoped_session[Any]] = []
        self._flask: list[Any] = []
        #: flask-session = test: each db.session and the registry it had
        self._flask_registries: list[tuple[Any, Any]] = []
        self._target: Engine | None = None
        self._collected = False
        self._marks: list[dict[int, tuple[Session, set[Any]]]] = []
        for name, obj in self.objects.items():
            if redirect_kind(obj) is None:
                raise UnsupportedObjectError(name, type(obj).__name__, "an Engine, sessionmaker, scoped_session, "
                                             "Flask-SQLAlchemy db, AsyncEngine, async_sessionmaker or "
                                             "async_scoped_session")
        if flask_session == "test" and not any(is_flask_sqlalchemy(obj) for obj in self.objects.values()):
            raise ConfigError("flask-session", flask_session, "no Flask-SQLAlchemy db is named under sessions",
                              "Name the app's db under sessions (sessions = myapp:db), or remove flask-session")

    @property
    def engines(self) -> list[Engine]:
        """Every engine redirected so far (the Flask apps' too)."""
        return [swap.engine for swap in self._swaps.values()]

    def named_engines(self) -> dict[str, Engine]:
        """The app's engines known before any is redirected, by the name messages give them."""
        self._collect_all()
        return {self._name(swap.engine): swap.engine for swap in self._swaps.values()}

    def carry(self, setup: ConnectSetup) -> None:
        """The run's connection was made with ``setup``: what it carried over
        is not named as set aside, what it could not carry is."""
        for swap in self._swaps.values():
            swap.carried = id(swap.engine) in setup.carried
        self.set_aside.extend(setup.set_aside)

    # -- aiming -----------------------------------------------------------------
    def _collect_all(self) -> None:
        if not self._collected:
            self._collected = True
            for obj in self.objects.values():
                self._collect(obj)

    def point(self, target: Engine) -> None:
        """Aim everything at ``target`` (the first call remembers what to restore)."""
        self._collect_all()
        self._target = target
        for swap in self._swaps.values():
            self._point(swap, target)
        for factory, saved in self._factories:
            if saved.get("bind") is None and not saved.get("binds"):
                factory.kw["bind"] = _bind_for(factory, target)  # an unbound factory: bind it

    def _point(self, swap: _EngineSwap, target: Engine) -> None:
        if id(swap) not in self._reported:
            self._reported.add(id(swap))
            for option in swap.set_aside(target):
                self.set_aside.append(f"{self._name(swap.engine)} {option}")
        own = swap.saved["dialect"]
        if type(own) is type(target.dialect) and self.on_own_dialect is not None:
            # Before point(): the connection it opens to initialize the dialect
            # (an engine made during the run) ends with a rollback, which the
            # run's handles must see through this dialect, or the lock its
            # event takes is never given back and other threads wait forever.
            self.on_own_dialect(own)
        swap.point(target)

    def _name(self, engine: Engine) -> str:
        for name, obj in self.objects.items():
            if obj is engine or getattr(obj, "sync_engine", None) is engine:
                return name
        return "an engine of " + ", ".join(self.objects) if self.objects else "an engine"

    def _collect(self, obj: Any) -> None:
        kind = redirect_kind(obj)
        if kind == "engine":
            self._engine(obj)
        elif kind == "AsyncEngine":
            self._engine(obj.sync_engine)
        elif kind in ("scoped_session", "async_scoped_session"):
            self._registries.append(obj)
            self._collect(obj.session_factory)
        elif kind in ("sessionmaker", "async_sessionmaker"):
            self._factories.append((obj, dict(obj.kw)))
            for engine in factory_engines(obj):
                if isinstance(engine, Engine):
                    self._engine(engine)
        elif kind == "Flask-SQLAlchemy":
            self._flask_db(obj)

    def claims(self, engine: Engine) -> bool:
        """Whether ``engine`` is one of the objects this Redirection was given (or theirs)."""
        self._collect_all()
        return id(getattr(engine, "_proxied", engine)) in self._swaps

    def _engine(self, engine: Engine) -> _EngineSwap:
        engine = getattr(engine, "_proxied", engine)
        for other in self.binds.values():
            if other.claims(engine):
                return other._engine(engine)
        swap = self._swaps.get(id(engine))
        if swap is None:
            swap = self._swaps[id(engine)] = _EngineSwap(engine)
            if self._target is not None:
                self._point(swap, self._target)
        return swap

    def _flask_db(self, db: Any) -> None:
        """Flask-SQLAlchemy 3: the engines of every app registered so far, and of
        apps registered later (an app factory called in a test's setUp)."""
        if not callable(getattr(db, "_make_engine", None)):
            raise UnsupportedObjectError(
                "this Flask-SQLAlchemy db", f"{type(db).__name__} without _make_engine",
                "Flask-SQLAlchemy 3.0 or 3.1; name its engines under engines instead")
        self._registries.append(db.session)
        for engines in list(db._app_engines.values()):
            for key, engine in engines.items():
                self._bind(db, key, engine)
        make_engine = db._make_engine

        def _make_engine(bind_key: str | None, *args: Any, **kwargs: Any) -> Engine:
            engine: Engine = make_engine(bind_key, *args, **kwargs)
            self._bind(db, bind_key, engine)
            return engine

        # An instance attribute shadows the method until restore() deletes it.
        db._make_engine = _make_engine
        if self.flask_session == "test":
            # One key for every app context, and the teardown of an app
            # context (db.session.remove()) no longer ends the test's Session:
            # the end of the test's scope closes it (end_scope).
            self._flask_registries.append((db.session, db.session.registry))
            db.session.registry = ScopedRegistry(db.session.registry.createfunc, _one_session_per_test)
            db.session.remove = _kept
        self._flask.append(db)

    def _bind(self, db: Any, key: str | None, engine: Engine) -> None:
        """A Flask-SQLAlchemy ``db``'s engine for bind ``key`` (None: its default), to the database of that name."""
        if key is None:
            self._engine(engine)
        elif key in self.binds:
            self.binds[key]._engine(engine)
        else:
            name = next((n for n, obj in self.objects.items() if obj is db), "the Flask-SQLAlchemy db")
            raise ConfigError(
                "sessions", name, f"its app has a bind {key!r} (SQLALCHEMY_BINDS), and the run has no database of "
                "that name: its tables would be made and used in [sqltx]'s database",
                f"Add a [sqltx:{key}] section (its dsn and the bind's metadata) for the bind's own database",
            )

    def restore(self) -> None:
        """Put every engine and factory back as it was; close scoped sessions."""
        self._close_sessions(keep=None)
        for db in self._flask:
            db.__dict__.pop("_make_engine", None)
        for session, registry in self._flask_registries:
            session.registry = registry
            session.__dict__.pop("remove", None)
        self._flask_registries.clear()
        for factory, saved in self._factories:
            factory.kw.clear()
            factory.kw.update(saved)
        for swap in self._swaps.values():
            swap.restore()
        self._swaps.clear()
        self._factories.clear()
        self._registries.clear()
        self._flask.clear()
        self._marks.clear()
        self._target = None

    # -- scopes -------------------------------------------------------------------
    def begin_scope(self) -> None:
        """Note the sessions that scoped registries hold now (they outlive the scope)."""
        self._marks.append({id(s): (s, set(s.identity_map.keys())) for s in self._sessions()})

    def end_scope(self) -> None:
        """Close the sessions made during the scope; reset the ones from before it
        (call while the database is about to roll back the scope)."""
        keep = self._marks.pop() if self._marks else {}
        self._close_sessions(keep)

    def end_all(self) -> None:
        """Close every session the scoped registries hold; forget all scopes
        (the caller rebuilds them)."""
        self._marks.clear()
        self._close_sessions(None)

    def _close_sessions(self, keep: dict[int, tuple[Session, set[Any]]] | None) -> None:
        for registry in self._registries:
            for session, forget in _held(registry):
                mark = (keep or {}).get(id(session))
                if mark is not None and mark[0] is session:
                    _reset(session, mark[1])
                else:
                    try:
                        session.close()
                    finally:
                        forget()

    def _sessions(self) -> Iterable[Session]:
        for registry in self._registries:
            for session, _ in _held(registry):
                yield session


def _one_session_per_test() -> str:
    return "nose2-sqltx: the test's session"


def _kept() -> None:
    """``db.session.remove()`` with ``flask-session = test``: the test's scope ends the Session."""


def _bind_for(factory: Any, target: Engine) -> Any:
    """What an unbound session factory is bound to: ``target``, or for an
    ``async_sessionmaker`` an ``AsyncEngine`` over it."""
    if redirect_kind(factory) == "async_sessionmaker":
        from sqlalchemy.ext.asyncio import AsyncEngine

        return AsyncEngine(target)
    return target


def _held(registry: Any) -> list[tuple[Session, Callable[[], None]]]:
    """The sessions a scoped_session (or async_scoped_session) holds, each
    with a way to drop it: every scope's for a ScopedRegistry
    (Flask-SQLAlchemy: one per app context; async: one per task), this
    thread's for a thread-local one. An ``AsyncSession`` is given as its
    sync Session, which the run's connection serves from sync code."""
    store: Any = registry.registry
    if hasattr(store, "scopefunc"):
        return [(_sync(session), _dropper(store.registry, key)) for key, session in list(store.registry.items())]
    return [(_sync(store()), store.clear)] if store.has() else []


def _sync(session: Any) -> Session:
    return getattr(session, "sync_session", session)  # type: ignore[no-any-return]


def _dropper(held: dict[Any, Any], key: Any) -> Callable[[], None]:
    return lambda: held.pop(key, None) and None


def _reset(session: Session, identities: set[Any]) -> None:
    """Bring a session that outlives a scope back to the scope's start: forget
    what the scope added, reload the rest from the (rolled-back) database."""
    if not session.is_active:
        session.rollback()
    for obj in list(session.new):
        session.expunge(obj)
    for key in list(session.identity_map.keys()):
        if key not in identities:
            obj = session.identity_map.get(key)
            if obj is not None:
                session.expunge(obj)
    session.expire_all()

