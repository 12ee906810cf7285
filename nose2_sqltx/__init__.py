"""nose2-sqltx: every test on your real database, in a transaction that is rolled back.

Configure ``[tool.sqltx]`` in pyproject.toml (or ``[sqltx]`` in setup.cfg
or unittest.cfg), write ``class TestX(DatabaseTest, unittest.TestCase)``
(async code: ``class TestX(AsyncDatabaseTest,
unittest.IsolatedAsyncioTestCase)``) and run them with nose2 (``plugins =
nose2_sqltx`` under ``[unittest]``), pytest, or ``python -m unittest``. See README.md.
"""

from .async_testcase import AsyncDatabaseTest
from .errors import (
    AlreadyRunningError,
    AsyncDriverRequiredError,
    ConfigError,
    ConnectionLostError,
    DatabaseChangedError,
    DatabaseUnavailableError,
    ForkedProcessError,
    ImplicitCommitError,
    LeakError,
    LockWaitError,
    MigrationDriftError,
    NotActiveError,
    ScopeEndedError,
    ServerBinariesNotFoundError,
    ServerStartError,
    SetupError,
    SharedTransactionError,
    SqltxError,
    StrayAccessError,
    ThreadOutlivedTestError,
    TransactionEndedError,
    UnknownDatabaseError,
    UnsafeDatabaseError,
    UnsupportedObjectError,
    UntranslatedSchemaError,
)
from .isolation import IsolatedDatabase, current
from .leaks import unwatched
from .scopes import Scope
from .server import TemporaryPostgres
from .testcase import DatabaseTest, allow_database, real_commits
from .unittest_run import install as _install_unittest_opener

# Under plain `python -m unittest` the first DatabaseTest class opens the run
# (nose2's and pytest's plugins open it themselves, before any test).
_install_unittest_opener()

__all__ = [
    "DatabaseTest",
    "AsyncDatabaseTest",
    "IsolatedDatabase",
    "Scope",
    "TemporaryPostgres",
    "current",
    "real_commits",
    "allow_database",
    "unwatched",
    "SqltxError",
    "ConfigError",
    "NotActiveError",
    "AlreadyRunningError",
    "ScopeEndedError",
    "UnknownDatabaseError",
    "UnsupportedObjectError",
    "AsyncDriverRequiredError",
    "DatabaseUnavailableError",
    "ConnectionLostError",
    "SetupError",
    "MigrationDriftError",
    "TransactionEndedError",
    "ImplicitCommitError",
    "SharedTransactionError",
    "UntranslatedSchemaError",
    "ForkedProcessError",
    "LockWaitError",
    "LeakError",
    "StrayAccessError",
    "ThreadOutlivedTestError",
    "DatabaseChangedError",
    "UnsafeDatabaseError",
    "ServerBinariesNotFoundError",
    "ServerStartError",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # nose2 finds plugins with dir() + getattr(); importing the plugin lazily
    # keeps `import nose2_sqltx` (the core) free of nose2.
    if name == "SqltxPlugin":
        from .plugin import SqltxPlugin

        return SqltxPlugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "SqltxPlugin"])
