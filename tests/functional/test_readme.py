"""Every example in README.md runs: the blocks marked ``<!-- example: dir/file -->``
are written out exactly as shown and run the way the README says."""

import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from tests.support import ROOT, FunctionalTest, clean_env, dsn

MARKED_BLOCK = re.compile(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", re.S)
#: blocks quoted from files the suite runs (examples/, scenarios)
QUOTED_BLOCK = re.compile(r"<!-- from: (\S+) -->\n```\w*\n(.*?)```", re.S)


def examples():
    return dict(MARKED_BLOCK.findall((ROOT / "README.md").read_text()))


class TestReadme(FunctionalTest):
    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)
        for name, body in examples().items():
            path = self.dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        self.env = clean_env(PYTHONPATH=str(ROOT), SQLTX_DSN=dsn("psycopg2"))

    def run_in(self, subdir, *argv):
        return subprocess.run(argv, cwd=self.dir / subdir, env=self.env, capture_output=True, text=True, timeout=120)

    def test_quoted_blocks_are_exact_excerpts_of_files_that_run(self):
        quoted = QUOTED_BLOCK.findall((ROOT / "README.md").read_text())
        self.assertGreaterEqual(len(quoted), 8)
        for path, body in quoted:
            with self.subTest(path=path):
                self.assertIn(body, (ROOT / path).read_text(), f"README quotes {path}, which says otherwise now")

    def test_examples_are_found(self):
        self.assertEqual(sorted(examples()), ["core/example_core.py", "quickstart/models.py",
                                              "quickstart/test_orders.py", "quickstart/unittest.cfg"])

    def test_quickstart_on_your_server(self):
        readme = (ROOT / "README.md").read_text()
        command = re.search(r"\nSQLTX_DSN=(\S+) nose2 -v\n", readme)
        self.assertIsNotNone(command, "the README's command for your own server")
        # Literally, as a new user would: a URL without a driver, also where
        # only psycopg2 is installed (what pip install nose2-sqltx brings).
        hide_psycopg = str(ROOT / "tests" / "functional" / "scenarios" / "badinput" / "no_psycopg")
        for pythonpath in (str(ROOT), f"{hide_psycopg}:{ROOT}"):
            with self.subTest(pythonpath=pythonpath):
                self.env.update(SQLTX_DSN=command.group(1), PYTHONPATH=pythonpath)
                proc = self.run_in("quickstart", sys.executable, "-m", "nose2", "-v")
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertIn("Ran 2 tests", proc.stderr)
                self.assertRegex(proc.stderr, r"nose2-sqltx: PostgreSQL [\d.]+ at postgresql(\+psycopg2)?://")
                self.assertDatabaseUnchanged()

    def test_quickstart_on_the_throwaway_server(self):
        self.assertIn("\n```sh\nnose2 -v\n```\n", (ROOT / "README.md").read_text())
        del self.env["SQLTX_DSN"]
        proc = self.run_in("quickstart", sys.executable, "-m", "nose2", "-v")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("Ran 2 tests", proc.stderr)
        self.assertRegex(proc.stderr, r"nose2-sqltx: PostgreSQL [\d.]+ \(throwaway server, ")

    def test_quickstart_under_pytest_and_unittest(self):
        readme = (ROOT / "README.md").read_text()
        self.assertIn("(or `pytest -v`, or `python -m unittest -v`: the same tests, the same section", readme)
        runs = ((["pytest", "-v", "-p", "no:cacheprovider"], "2 passed"), (["unittest", "-v"], "Ran 2 tests"))
        for argv, ran in runs:
            with self.subTest(runner=argv[0]):
                proc = self.run_in("quickstart", sys.executable, "-m", *argv)
                self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
                self.assertIn(ran, proc.stdout + proc.stderr)
                self.assertIn("nose2-sqltx: PostgreSQL", proc.stdout + proc.stderr)
                self.assertDatabaseUnchanged()

    def test_core_example(self):
        proc = self.run_in("core", sys.executable, "example_core.py")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, "rows seen by the next scope: 0\n")
        self.assertDatabaseUnchanged()


if __name__ == "__main__":
    unittest.main()
