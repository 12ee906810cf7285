"""The environment variables nose2-sqltx reads, and the defaults of its settings.

The one home of each name and each default: configuration, messages and
the throwaway server all take them from here.
"""

from __future__ import annotations

__unittest = True

#: the database URL; wins over ``dsn`` in ``[sqltx]``
DSN_ENV = "SQLTX_DSN"
#: the database URL of the run's other database ``<name>`` (``[sqltx:<name>]``), upper case: SQLTX_DSN_ANALYTICS
NAMED_DSN_ENV = DSN_ENV + "_{}"
#: this run's shard of the suite, I/N (see nose2_sqltx.sharding)
SHARD_ENV = "SQLTX_SHARD"
#: throwaway server: where ``initdb`` and ``postgres`` are; wins over ``pg-bindir``
PG_BINDIR_ENV = "SQLTX_PG_BINDIR"
#: throwaway server: the PostgreSQL major version to run (16, 18); wins over ``server-version``
SERVER_VERSION_ENV = "SQLTX_SERVER_VERSION"
#: throwaway server: leave it running for the next run; wins over ``keep-server``
KEEP_SERVER_ENV = "SQLTX_KEEP_SERVER"
#: throwaway server: where its directory is made; wins over ``server-dir``
SERVER_DIR_ENV = "SQLTX_SERVER_DIR"
#: database names the production guard lets through; wins over ``allow-database``
ALLOW_DATABASE_ENV = "SQLTX_ALLOW_DATABASE"
#: where initialized data directories and schema builds are cached (default: ``~/.cache/nose2-sqltx``)
CACHE_DIR_ENV = "SQLTX_CACHE_DIR"
#: the schema cache: auto, on or off; wins over ``schema-cache``
SCHEMA_CACHE_ENV = "SQLTX_SCHEMA_CACHE"

#: ``lock-timeout`` when ``[sqltx]`` does not set it
DEFAULT_LOCK_TIMEOUT_MS = 10_000
#: ``statement-timeout`` when ``[sqltx]`` does not set it
DEFAULT_STATEMENT_TIMEOUT_MS = 60_000
#: what ``async-test-loop`` takes; the first is the default
ASYNC_TEST_LOOPS = ("run", "own")
