"""The backend template: one subclass per database, registered by dialect name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from ..config import mask_url
from ..errors import ConfigError

__unittest = True

registry: dict[str, type[Backend]] = {}


def register(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: make ``cls`` the backend for dialect ``name``."""

    def deco(cls: type[Backend]) -> type[Backend]:
        registry[name] = cls
        cls.name = name
        return cls

    return deco


class Backend:
    """What the core needs to know about one kind of database.

    ``drivers`` maps each supported SQLAlchemy driver name to the package that
    provides it (named in the error when it is missing); :meth:`install`
    makes the engine create guarded connections (see :mod:`nose2_sqltx.guard`).
    """

    name: ClassVar[str] = "*"
    display_name: ClassVar[str] = "database"
    drivers: ClassVar[dict[str, str]] = {}

    def __init__(self, url: URL, key: str = "dsn") -> None:
        self.url = url
        driver = url.get_driver_name()
        if driver not in self.drivers:
            raise ConfigError(
                key, mask_url(url), f"driver {driver!r} is not supported for {self.display_name}",
                "Use one of: " + ", ".join(f"{self.name}+{d}" for d in sorted(self.drivers)),
            )
        self.driver = driver

    def install(self, engine: Engine) -> None:
        """Make ``engine`` create guarded DB-API connections."""
        raise NotImplementedError

    def run_setup_sql(self, *, lock_timeout_ms: int, statement_timeout_ms: int) -> list[str]:
        """Statements run first in the run's transaction (timeouts and the like)."""
        return []

    def private_namespace_sql(self, name: str) -> list[str]:
        """Statements that give the run a namespace of its own, inside its
        transaction, for parallel workers sharing one database."""
        raise NotImplementedError(
            f"parallel runs are not supported on {self.display_name}: run without -N "
            "(nose2's multiprocess plugin)"
        )

    def server_version(self, dbapi_connection: Any) -> str:
        return self.display_name

    def is_lock_timeout(self, exc: BaseException) -> bool:
        """Whether ``exc`` (or what it wraps) is the server giving up on a lock."""
        return False

    def explain(self, exc: BaseException, *, lock_timeout_ms: int, statement_timeout_ms: int) -> str | None:
        """A sentence to add to a test's error caused by ``exc``, if it helps."""
        return None
