"""examples/fastapi_app, as a user runs it: a FastAPI app over async
SQLAlchemy, tested through httpx's ASGITransport."""

import subprocess
import sys

from tests.support import ROOT, FunctionalTest, clean_env, dsn

TESTS = 7


class TestFastAPIExample(FunctionalTest):
    def run_example(self, *args, **env):
        return subprocess.run([sys.executable, "-m", "nose2", "-v", *args], cwd=ROOT / "examples" / "fastapi_app",
                              env=clean_env(PYTHONPATH=str(ROOT), **env), capture_output=True, text=True, timeout=300)

    def assertPassed(self, proc):
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(f"Ran {TESTS} tests", proc.stderr)
        self.assertIn("\nOK\n", proc.stderr)
        self.assertDatabaseUnchanged()

    def test_on_the_test_server_with_asyncpg(self):
        proc = self.run_example(SQLTX_DSN=dsn("asyncpg"))
        self.assertPassed(proc)
        self.assertIn(" at postgresql+asyncpg://", proc.stderr)
        self.assertIn("schema (3 tables)", proc.stderr)

    def test_psycopg_3_is_used_asynchronously(self):
        # The DSN names psycopg 3; the app's engine is async: psycopg's async connection it is.
        proc = self.run_example(SQLTX_DSN=dsn("psycopg"))
        self.assertPassed(proc)
        self.assertIn(" at postgresql+psycopg_async://", proc.stderr)
        self.assertIn("shop.db:engine its dialect (postgresql+asyncpg, where the run's is postgresql+psycopg)",
                      proc.stderr)

    def test_on_a_throwaway_server_with_the_apps_driver(self):
        proc = self.run_example()
        self.assertPassed(proc)
        self.assertRegex(proc.stderr, r"\(throwaway server, .*\) at postgresql\+asyncpg://")

    def test_in_parallel_workers(self):
        proc = self.run_example("-N", "2", SQLTX_DSN=dsn("asyncpg"))
        self.assertPassed(proc)
        self.assertIn("parallel workers, each in a schema of its own", proc.stderr)
