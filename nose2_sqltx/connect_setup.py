"""The app's own connection setup, carried onto the run's connections.

In production, every connection an app engine makes gets the engine's
``connect_args`` (and the driver arguments of its URL's query) and then runs
the engine's ``connect`` listeners: ``PRAGMA foreign_keys=ON``,
``SET TIME ZONE``, ``init_command``, a registered type or SQL function. Under
the plugin the app's engines use the run's connection instead, so
:func:`read_setup` reads that setup off them before they are redirected and
:class:`ConnectSetup` gives it to the run's engine, which makes its one
connection the way the app's engines would have. The test transaction then
has the session state production has.

What cannot be carried over is named for the run's last line: the setup of
an engine of another driver than the run's, a ``creator`` function, a
driver argument the run's connection needs for itself, and arguments on
which two engines disagree (one connection has one value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

from .errors import SetupError
from .messages import first_line

__unittest = True

__all__ = ["ConnectSetup", "own_connect_listeners", "read_setup"]

Listener = Callable[[Any, Any], None]


def own_connect_listeners(engine: Engine) -> list[Listener]:
    """The ``connect`` listeners the app put on ``engine`` itself.

    Listeners on the ``Engine`` or ``Pool`` class (SQLAlchemy's recipe for
    SQLite's foreign keys) reach every engine, the run's included, and are
    not counted; nor are the ones ``create_engine`` adds for the dialect.
    """
    listeners = getattr(engine.pool.dispatch.connect, "listeners", ())
    return [fn for fn in listeners
            if not getattr(fn, "__qualname__", "").startswith(("create_engine.", "only_once."))]


def _driver_arguments(engine: Engine) -> dict[str, Any] | None:
    """What ``engine`` passes its driver beyond where to connect: its
    ``connect_args`` and its URL's query. None when it cannot be read (the
    engine was given its own ``creator``)."""
    creator = getattr(engine.pool, "_creator", None)
    code = getattr(creator, "__code__", None)
    if code is None or "cparams" not in code.co_freevars or creator is None:
        return None
    # create_engine() keeps them only in its connect function's closure.
    cell = creator.__closure__[code.co_freevars.index("cparams")]
    arguments: Mapping[str, Any] = cell.cell_contents
    _, where = engine.dialect.create_connect_args(engine.url.set(query={}))
    return {key: value for key, value in arguments.items() if key not in where}


@dataclass(frozen=True)
class ConnectSetup:
    """The driver arguments and ``connect`` listeners of the app's engines,
    for the connections the run makes; ``set_aside`` names what could not be
    carried over, as ``"<engine> <what> (<why>)"``."""

    connect_args: Mapping[str, Any] = field(default_factory=dict)
    #: (engine name, listener), in the order of the config
    listeners: tuple[tuple[str, Listener], ...] = ()
    set_aside: tuple[str, ...] = ()
    #: ids of the engines whose setup this carries
    carried: frozenset[int] = frozenset()

    def install(self, engine: Engine) -> None:
        """Make ``engine``'s new connections run the app's listeners, as the
        app's engines would (``connect_args`` go to ``create_engine``)."""
        if self.listeners:
            event.listen(engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_connection: Any, record: Any) -> None:
        for name, listener in self.listeners:
            try:
                listener(dbapi_connection, record)
            except Exception as exc:
                label = getattr(listener, "__qualname__", repr(listener))
                raise SetupError(
                    f"{name}'s connect listener {label}, run on the run's connection",
                    f"{type(exc).__name__}: {first_line(exc)}. It runs there as on every connection "
                    f"{name} makes: fix the listener, or leave {name} out of engines",
                ) from exc


def read_setup(engines: Mapping[str, Engine], run_url: URL, reserved: Mapping[str, object]) -> ConnectSetup:
    """The setup of ``engines`` (by name) that the run's connections on
    ``run_url`` can take; ``reserved``: the driver arguments the run's
    connection sets for itself, with their values."""
    dialect_cls = run_url.get_dialect()
    arguments: dict[str, tuple[str, Any]] = {}
    listeners: list[tuple[str, Listener]] = []
    aside: list[str] = []
    carried: set[int] = set()
    for name, engine in engines.items():
        if type(engine.dialect) is not dialect_cls:
            continue  # its dialect is set aside as a whole, and named so by the redirection
        carried.add(id(engine))
        own = _driver_arguments(engine)
        if own is None:
            aside.append(f"{name} its creator (the run makes its own connection)")
            own = {}
        for key, value in own.items():
            if key in reserved:
                if reserved[key] != value:
                    aside.append(f"{name} connect_args {key!r} (the run's connection sets it itself)")
            elif key in arguments and arguments[key][1] != value:
                aside.append(f"{name} connect_args {key!r} (one connection cannot also take "
                             f"{arguments[key][0]}'s value)")
            else:
                arguments.setdefault(key, (name, value))
        for listener in own_connect_listeners(engine):
            if all(listener is not seen for _, seen in listeners):
                listeners.append((name, listener))
    return ConnectSetup(connect_args={key: value for key, (_, value) in arguments.items()},
                        listeners=tuple(listeners), set_aside=tuple(aside), carried=frozenset(carried))
