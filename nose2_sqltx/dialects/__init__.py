"""Backend registry: every database difference lives behind one entry here.

:func:`backend_for` picks the :class:`~nose2_sqltx.dialects.base.Backend`
registered for a URL's dialect name; the core never branches on dialects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

from ..errors import ConfigError
from ..messages import mask_url
from . import mysql as _mysql  # noqa: F401  (each registers itself)
from . import postgresql as _postgresql  # noqa: F401
from . import sqlite as _sqlite  # noqa: F401
from .base import RUN_NAME_LENGTH, Backend, new_run_name, register, registry

__unittest = True

__all__ = ["RUN_NAME_LENGTH", "Backend", "backend_for", "new_run_name", "register", "with_installed_driver"]


def _importable(url: URL, driver: str) -> bool:
    try:
        url.set(drivername=f"{url.get_backend_name()}+{driver}").get_dialect().import_dbapi()
    except ImportError:
        return False
    return True


def with_installed_driver(url: URL) -> URL:
    """``url`` with a driver that is installed, where it names none
    (``postgresql://``): SQLAlchemy's default for it if that is installed
    (psycopg 3 on SQLAlchemy 2.1, psycopg2 on 2.0), else another sync one the
    backend supports that is. A URL that names its driver is left alone."""
    backend_cls = registry.get(url.get_backend_name())
    if "+" in url.drivername or backend_cls is None:
        return url
    default = url.get_driver_name()
    others = sorted(d for d in backend_cls.drivers if d != default and d not in backend_cls.async_drivers)
    for driver in [default, *others]:
        if driver in backend_cls.drivers and _importable(url, driver):
            return url if driver == default else url.set(drivername=f"{url.get_backend_name()}+{driver}")
    return url


def backend_for(url: URL, key: str = "dsn", **options: Any) -> Backend:
    """Return the backend for ``url``, or a :class:`ConfigError` naming what is supported.

    ``options`` are backend settings (``create_database``) that others ignore.
    """
    name = url.get_backend_name()
    backend_cls = registry.get(name)
    if backend_cls is None:
        raise ConfigError(
            key, mask_url(url), f"database {name!r} is not supported",
            f"Supported: {', '.join(sorted(registry))}",
        )
    return backend_cls(url, key, **options)
