"""The run's driver, matched to the app's objects and the run's test classes.

An ``AsyncDatabaseTest`` and the app's async objects (``AsyncEngine``,
``async_sessionmaker``, ``async_scoped_session``) need an async driver;
:func:`run_url` says which URL the run connects with, or why the settings
cannot work (one :class:`~nose2_sqltx.errors.ConfigError` naming the key).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

from .config import Loaded, Settings
from .errors import ConfigError
from .messages import mask_url
from .redirect import ASYNC_KINDS, factory_engines, redirect_kind

__unittest = True

__all__ = ["run_url"]


def run_url(url: URL, settings: Settings, loaded: Loaded, *, async_tests: str | None = None,
            throwaway: bool = False) -> URL:
    """The URL the run connects with, its driver matched to the app's objects
    (``loaded``) and test classes (``async_tests``: the name of an
    ``AsyncDatabaseTest`` class of the run, if any): async ones need an async
    driver, which psycopg 3 and a throwaway server provide by themselves;
    other mismatches are a :class:`ConfigError` naming the key and the fix."""
    kinds = {path: redirect_kind(obj) for path, obj in loaded.redirect.items()}
    async_paths = [path for path, kind in kinds.items() if kind in ASYNC_KINDS]
    sync_paths = [path for path, kind in kinds.items() if kind not in ASYNC_KINDS]
    is_async = url.get_dialect().is_async
    if (async_paths or async_tests) and not is_async:
        switched = _async_driver(url, loaded, throwaway=throwaway)
        if switched is not None:
            return switched
        if async_paths:
            path = async_paths[0]
            key = "engines" if path in settings.engines else "sessions"
            raise ConfigError(
                key, path, f"is an {kinds[path]} (async SQLAlchemy), and dsn names the sync driver "
                f"{url.get_driver_name()!r}", f"Name an async driver in dsn: {_ASYNC_EXAMPLES}")
        raise ConfigError(
            settings.dsn_source, mask_url(url), f"names the sync driver {url.get_driver_name()!r}, and "
            f"{async_tests} is an AsyncDatabaseTest", f"Name an async driver: {_ASYNC_EXAMPLES} (the run's "
            "DatabaseTest classes use it too)")
    if is_async and sync_paths and not async_paths and not async_tests:
        raise ConfigError(
            settings.dsn_source, mask_url(url), f"names the async driver {url.get_driver_name()!r}, but every "
            "object under "
            f"engines and sessions is sync ({', '.join(sync_paths)}) and no test class is an AsyncDatabaseTest",
            "Name the driver the app's engines use (e.g. postgresql+psycopg2://), or list the app's AsyncEngine "
            "or async_sessionmaker too")
    return url


#: the async drivers, as dsn examples for messages
_ASYNC_EXAMPLES = ("postgresql+asyncpg://, postgresql+psycopg_async://, sqlite+aiosqlite://, mysql+aiomysql:// "
                   "or mysql+asyncmy://")


def _async_driver(url: URL, loaded: Loaded, *, throwaway: bool) -> URL | None:
    """The async counterpart of ``url``'s driver where one is implied: psycopg
    3's own async connection, or for a throwaway server the async driver the
    app's objects use (else asyncpg, else psycopg's)."""
    backend = url.get_backend_name()
    if url.get_driver_name() == "psycopg":
        return url.set(drivername=f"{backend}+psycopg_async")
    if not throwaway:
        return None
    used = [getattr(engine, "dialect", None) for obj in loaded.redirect.values() for engine in _engines_of(obj)]
    drivers = [d.driver for d in used if d is not None and d.is_async and d.name == backend]
    for driver in [*drivers, "asyncpg", "psycopg_async"]:
        candidate = url.set(drivername=f"{backend}+{driver}")
        try:
            candidate.get_dialect().import_dbapi()
        except ImportError:
            continue
        return candidate
    return None


def _engines_of(obj: Any) -> list[Any]:
    kind = redirect_kind(obj)
    if kind in ("engine", "AsyncEngine"):
        return [getattr(obj, "sync_engine", obj)]
    if kind in ("sessionmaker", "scoped_session", "async_sessionmaker", "async_scoped_session"):
        return [e for e in factory_engines(obj) if e is not None]
    return []
