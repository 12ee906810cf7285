"""Run part of the project's suite on a throwaway server of another PostgreSQL version.

    python tests/on_server.py BINDIR MODULE...

starts a server from ``BINDIR`` (``initdb`` and ``postgres`` of the version
under test), makes its ``test`` database, runs ``nose2 -v MODULE...`` with
``SQLTX_TEST_DSN`` pointing there, stops the server and exits with nose2's
status. ``scripts/test`` runs the core semantics this way on each version
of its matrix (see the README's Compatibility section).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nose2_sqltx import TemporaryPostgres  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    bindir, modules = argv[0], argv[1:]
    with TemporaryPostgres(bindir=bindir, tcp=True) as server:
        engine = create_engine(server.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("CREATE DATABASE test"))
        engine.dispose()
        dsn = server.url.set(database="test").render_as_string(hide_password=False)
        print(f"== PostgreSQL {server.version} from {bindir}, at {dsn}", flush=True)
        env = {**os.environ, "SQLTX_TEST_DSN": dsn}
        env.pop("SQLTX_PG_BINDIR", None)  # the scenarios' own throwaway servers stay the default ones
        return subprocess.run([sys.executable, "-m", "nose2", "-v", *modules], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
