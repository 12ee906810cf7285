"""The same tests under nose2, pytest (and pytest-xdist) and python -m unittest,
configured from one [sqltx] section, each leaving the database as found."""

import re
import signal
import subprocess
import sys
import time
from typing import ClassVar

from tests.functional.test_server import server_processes
from tests.support import (
    ASYNC_TARGETS,
    ROOT,
    RUNNERS,
    SCENARIOS,
    FunctionalTest,
    Run,
    async_semantics_tests,
    clean_env,
    dsn,
    each_target,
    run_nose2,
    slow_run,
)

#: what each runner says about a whole run that passed
PASSED = {"nose2": "\nOK\n", "unittest": "\nOK\n", "pytest": " passed in "}


def summary_of(run: Run) -> str:
    """The run's summary line (pytest: in its terminal summary, on stdout; the others: stderr)."""
    lines = [line for line in run.output.splitlines() if line.startswith("nose2-sqltx: ")]
    return lines[-1] if lines else ""


class TestSemanticsUnderEveryRunner(FunctionalTest):
    """The README's table of what app code may do, under pytest and unittest
    as under nose2 (test_semantics.py runs it under nose2)."""

    @each_target()
    def test_semantics_under_pytest(self, target):
        run = self.run_scenario("semantics", target=target, runner="pytest")
        self.assertRan(run, 21)
        self.assertIn("all rolled back", summary_of(run))

    @each_target()
    def test_semantics_under_unittest(self, target):
        run = self.run_scenario("semantics", target=target, runner="unittest")
        self.assertRan(run, 21)
        self.assertIn("\nOK\n", run.stderr)
        self.assertIn("all rolled back", summary_of(run))

    @each_target("postgresql+psycopg2", "mysql+pymysql", "sqlite")
    def test_semantics_under_pytest_xdist(self, target):
        run = self.run_scenario("semantics", "-n", "2", target=target, runner="pytest")
        self.assertRan(run, 21)
        self.assertIn("parallel workers", summary_of(run))

    @each_target("postgresql+psycopg2", "mysql+pymysql", "sqlite")
    def test_class_data_and_its_errors(self, target):
        for runner in ("pytest", "unittest"):
            with self.subTest(runner=runner):
                run = self.run_scenario("classlevel", target=target, runner=runner, expect=1)
                self.assertIn("RuntimeError: setUpTestData broke on purpose", run.output)
                if runner == "pytest":  # pytest reports a class's set-up error on each of its tests
                    self.assertIn("ERROR at setup of TestB_BrokenSetUpTestData.test_never_runs", run.output)
                    self.assertRegex(run.stdout, r"\b3 passed, 1 error in ")
                else:
                    self.assertNotIn("test_never_runs", run.output)
                    self.assertIn("FAILED (errors=1)", run.stderr)
                self.assertRegex(run.output, r"test_2_class_data_restored\b.*(ok|PASSED)")
                self.assertRegex(run.output, r"test_nothing_left\b.*(ok|PASSED)")


class TestAsyncUnderEveryRunner(FunctionalTest):
    """AsyncDatabaseTest under pytest and unittest (scripts/test runs it on each Python too)."""

    @each_target(*ASYNC_TARGETS)
    def test_async_semantics_under_pytest_and_unittest(self, target):
        for runner in ("pytest", "unittest"):
            with self.subTest(runner=runner):
                run = self.run_scenario("async_semantics", target=target, runner=runner)
                self.assertRan(run, async_semantics_tests(target))  # as under nose2
                self.assertIn(PASSED[runner], run.output)
                self.assertIn("all rolled back", summary_of(run))


class TestPytestFunctions(FunctionalTest):
    """Function tests with the sqltx_session/sqltx_connection/sqltx_engine
    fixtures, the app's redirected engine, a function fixture, a refused
    module fixture and real commits, beside a DatabaseTest class."""

    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "mysql+mysqldb", "sqlite-file")
    def test_function_tests_and_fixtures(self, target):
        run = self.run_scenario("pytest_functions", target=target, runner="pytest", expect=1)
        self.assertRegex(run.stdout, r"\b11 passed, 1 error in ")
        self.assertIn("ERROR test_functions.py::test_6_a_module_fixture_that_writes_is_refused", run.stdout)
        self.assertIn("the module-scoped fixture 'module_rows' wrote to the database (INSERT INTO sqltx_item",
                      run.stdout)
        self.assertIn("Make the fixture function-scoped", run.stdout)

    def test_in_xdist_workers(self):
        run = self.run_scenario("pytest_functions", "-n", "2", runner="pytest", expect=1)
        # each worker refuses the module fixture it gets, and real commits (which would need the shared database)
        self.assertRegex(run.stdout, r"\b10 passed, 2 errors in ")
        self.assertIn("real commits failed: they cannot be given to parallel workers", run.stdout)
        self.assertIn("(nose2 -N, pytest -n)", run.stdout)


class TestXdist(FunctionalTest):
    def test_an_unreachable_database_is_one_line_before_the_workers_start(self):
        run = run_nose2("semantics", "-n", "2", runner="pytest",
                        env={"SQLTX_DSN": "postgresql+psycopg2://postgres@127.0.0.1:1/test"})
        self.assertEqual(run.returncode, 4, run.output)
        lines = [line for line in run.output.splitlines() if "nose2-sqltx:" in line]
        self.assertEqual(lines, ["ERROR: nose2-sqltx: error: cannot connect to "
                                 "postgresql+psycopg2://postgres@127.0.0.1:1/test: connection to server at "
                                 '"127.0.0.1", port 1 failed: Connection refused. Check that the server is running '
                                 "and that dsn (or SQLTX_DSN) names the right host, port, user and database"])
        self.assertNotIn("INTERNALERROR", run.output)
        self.assertDatabaseUnchanged()

    def test_a_worker_that_cannot_connect_fails_every_test_it_gets(self):
        # the scenario's import points the workers' SQLTX_DSN at a closed port, after the main process's check
        run = self.run_scenario("parallel_broken", "-n", "2", runner="pytest", expect=1, timeout=120)
        collected = re.search(r"\[(\d+) items\]", run.stdout)
        self.assertIsNotNone(collected, run.stdout[-3000:])
        last = run.stdout.strip().splitlines()[-1]
        self.assertRegex(last, rf"^=+ {collected.group(1)} errors in [\d.]+s =+$")  # and nothing passed
        self.assertIn("cannot connect to postgresql://postgres@127.0.0.1:1/test", run.stdout)
        self.assertNotIn("INTERNALERROR", run.output)


class TestExamplesUnderEveryRunner(FunctionalTest):
    """The README's examples pass under every runner, on the test server and on a throwaway one."""

    EXAMPLES: ClassVar = {"demo": ("psycopg2", 7), "bookshop": ("psycopg2", 11), "fastapi_app": ("asyncpg", 7)}

    def run_example(self, name: str, runner: str, **env: str) -> Run:
        proc = subprocess.run([sys.executable, "-m", *RUNNERS[runner], "-v"], cwd=ROOT / "examples" / name,
                              env=clean_env(PYTHONPATH=str(ROOT), **env), capture_output=True, text=True,
                              timeout=300)
        return Run(proc.returncode, proc.stdout, proc.stderr, runner)

    def test_on_the_test_server(self):
        for name, (driver, tests) in self.EXAMPLES.items():
            for runner in RUNNERS:
                with self.subTest(example=name, runner=runner):
                    run = self.run_example(name, runner, SQLTX_DSN=dsn(driver))
                    self.assertEqual(run.returncode, 0, run.output)
                    self.assertRan(run, tests)
                    self.assertIn(f" at postgresql+{driver}://" if " -" not in runner else "parallel workers",
                                  summary_of(run))
                    self.assertDatabaseUnchanged()

    def test_on_a_throwaway_server(self):
        for name in ("demo", "fastapi_app"):
            for runner in ("pytest", "pytest -n 2", "unittest"):
                with self.subTest(example=name, runner=runner):
                    run = self.run_example(name, runner)
                    self.assertEqual(run.returncode, 0, run.output)
                    self.assertRan(run, self.EXAMPLES[name][1])
                    if "-n" not in runner:
                        self.assertIn("(throwaway server, ", summary_of(run))
                    self.assertEqual(_throwaway_servers(), [], "a throwaway server left running")


def _throwaway_servers() -> list[str]:
    """The throwaway servers' processes still running, after a moment to go."""
    deadline = time.monotonic() + 10
    while (found := server_processes("nose2-sqltx-pg-")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


class TestOneConfiguration(FunctionalTest):
    """One [sqltx] section, in pyproject.toml, setup.cfg or unittest.cfg, read by every runner alike."""

    def test_pyproject_toml_and_setup_cfg_under_every_runner(self):
        for where in ("toml", "setupcfg"):
            for runner in ("nose2", "pytest", "unittest"):
                with self.subTest(where=where, runner=runner):
                    run = self.run_scenario(f"config_files/{where}", runner=runner)
                    self.assertRan(run, 2)
                    self.assertIn("schema (2 tables)", summary_of(run))

    def test_a_pyproject_section_with_parallel_workers_on_a_throwaway_server(self):
        # nose2's main process tells its workers the server's URL through nose2's own config: on top of the section
        for runner in ("nose2 -N 2", "pytest -n 2"):
            with self.subTest(runner=runner):
                run = self.run_scenario("config_files/toml", runner=runner, set_dsn=False)
                self.assertRan(run, 2)
                self.assertIn("(throwaway server, ", summary_of(run))
                self.assertIn("parallel workers", summary_of(run))
                self.assertEqual(_throwaway_servers(), [], "a throwaway server left running")

    def test_sections_in_two_files_are_one_line(self):
        expected = {"nose2": 2, "pytest": 4, "unittest": 1}
        for runner, status in expected.items():
            with self.subTest(runner=runner):
                run = run_nose2("config_files/conflict", runner=runner)
                self.assertEqual(run.returncode, status, run.output)
                self.assertIn("[sqltx]: is set in ", run.output)
                self.assertIn("Keep the section in one file", run.output)
                self.assertEqual(run.output.count("Keep the section in one file"), 1, run.output)
                self.assertNotIn("Traceback", run.output)
                self.assertNotIn("nose2_sqltx/", run.output, "internal frames shown")
                self.assertDatabaseUnchanged()

    def test_always_on_false_means_off_under_every_runner(self):
        for runner, fragment in (("nose2", "DatabaseTest needs the nose2-sqltx plugin"),
                                 ("pytest", "DatabaseTest needs nose2-sqltx's pytest plugin, which is not switched on"),
                                 ("unittest", "switched off by always-on = false in pyproject.toml")):
            with self.subTest(runner=runner):
                run = run_nose2("config_files/off", runner=runner)
                self.assertNotEqual(run.returncode, 0, run.output)
                self.assertIn(fragment, run.output)
                self.assertDatabaseUnchanged()
        # and --sqltx switches it on for one run
        for runner in ("nose2", "pytest"):
            with self.subTest(runner=runner, switch="--sqltx"):
                run = self.run_scenario("config_files/off", "--sqltx", runner=runner)
                self.assertRan(run, 2)


class TestRunnerBadInput(FunctionalTest):
    def test_a_database_test_while_the_pytest_plugin_is_off(self):
        run = run_nose2("badinput", "test_never.py", runner="pytest", set_dsn=False)
        self.assertEqual(run.returncode, 4, run.output)
        self.assertNotIn("Traceback", run.output)
        # pytest's own header, then one line of ours
        lines = [line for line in run.output.splitlines() if "nose2-sqltx:" in line]
        self.assertEqual(len(lines), 1, run.output)
        self.assertIn("test_never.py::TestNever::test_nothing: DatabaseTest needs nose2-sqltx's pytest plugin",
                      lines[0])
        self.assertIn("or run pytest --sqltx", lines[0])
        self.assertDatabaseUnchanged()

    def test_pytest_n_without_xdist(self):
        run = run_nose2("semantics", "-p", "no:xdist", "-n", "2", runner="pytest")
        self.assertEqual(run.returncode, 4, run.output)
        lines = [line for line in run.output.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, run.output)
        self.assertIn("pytest -n needs the pytest-xdist plugin", lines[0])
        self.assertIn("pip install pytest-xdist", lines[0])
        self.assertDatabaseUnchanged()

    def test_sqltx_dsn_on_pytests_command_line_wins(self):
        run = self.run_scenario("semantics", "--sqltx-dsn", dsn("psycopg"), runner="pytest",
                                env={"SQLTX_DSN": "postgresql+psycopg2://postgres@127.0.0.1:1/test"})
        self.assertRan(run, 21)
        self.assertIn(" at postgresql+psycopg://", summary_of(run))

    def test_a_bad_key_under_pytest_and_unittest(self):
        env = clean_env(SQLTX_DSN=dsn())
        for runner in ("pytest", "unittest"):
            with self.subTest(runner=runner):
                proc = subprocess.run([sys.executable, "-m", *RUNNERS[runner]], cwd=SCENARIOS / "badinput_toml",
                                      env=env, capture_output=True, text=True, timeout=120)
                output = proc.stdout + proc.stderr
                self.assertNotEqual(proc.returncode, 0, output)
                self.assertIn("[sqltx] dns: unknown key. Did you mean 'dsn'?", output)
                self.assertEqual(output.count("unknown key"), 1, output)
                self.assertNotIn("nose2_sqltx/", output, "internal frames shown")
                self.assertDatabaseUnchanged()


class TestUnittest(FunctionalTest):
    def test_a_plain_testcase_is_told_it_has_no_transaction(self):
        # only plain tests: no run is opened
        run = self.run_scenario("plain", runner="unittest", expect=1)
        self.assertIn("nose2_sqltx.current() under python -m unittest: unittest calls nothing around a test that "
                      "is not a DatabaseTest", run.stderr)
        # beside DatabaseTest classes: the run is open, and its own scope is refused to them
        run = self.run_scenario("ended", runner="unittest", expect=1)
        self.assertIn("ERROR: test_raw_commit_in_plain_test", run.stderr)
        self.assertIn("nose2_sqltx.current() outside a DatabaseTest under python -m unittest", run.stderr)
        self.assertIn("Make the class a DatabaseTest, or run the tests with nose2 or pytest", run.stderr)

    def test_the_end_of_the_run_is_checked(self):
        # A COMMIT in the run's own scope, after the class's: found when the process ends.
        run = self.run_scenario("ended_at_exit", runner="unittest", expect=1)
        self.assertIn("Ran 1 test", run.stderr)
        self.assertIn("\nOK\n", run.stderr)
        self.assertIn("nose2-sqltx: error: the statement 'COMMIT' ended the test transaction", run.stderr)
        self.assertIn("code under test ended the run's transaction 1 time(s)", summary_of(run))

    def test_one_test_module_by_name(self):
        proc = subprocess.run([sys.executable, "-m", "unittest", "-v", "test_semantics"], cwd=SCENARIOS / "semantics",
                              env=clean_env(SQLTX_DSN=dsn()), capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("Ran 21 tests", proc.stderr)
        self.assertDatabaseUnchanged()


class TestSignalsUnderEveryRunner(FunctionalTest):
    def test_ctrl_c_and_sigterm_leave_nothing(self):
        for runner in ("pytest", "unittest"):
            for sig in (signal.SIGINT, signal.SIGTERM):
                for block in ("sleep", "query"):
                    with self.subTest(runner=runner, signal=sig.name, block=block):
                        with slow_run(runner=runner, block=block) as proc:
                            time.sleep(0.3)
                            proc.send_signal(sig)
                            out, err = proc.communicate(timeout=30)
                        self.assertEqual(proc.returncode, -sig, f"did not die by {sig.name}:\n{out}{err}")
                        label = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
                        self.assertIn(f"nose2-sqltx: stopped by {label}; the run", out + err)
                        self.assertNotIn("Traceback", err)
                        self.assertDatabaseUnchanged()

