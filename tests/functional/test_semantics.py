"""What app code may do inside a test, on every database and driver:
production semantics inside the test, nothing after it."""

import re

from nose2_sqltx.refresh import GROWTH_BYTES
from tests.support import SHORT_SOAK, FunctionalTest, each_target

SOAK_TESTS = 2_000 if SHORT_SOAK else 20_000


class TestSemantics(FunctionalTest):
    @each_target()
    def test_commit_rollback_and_class_data(self, target):
        run = self.run_scenario("semantics", target=target)
        self.assertRan(run, 21)
        self.assertIn("\nOK\n", run.stderr)
        self.assertIn(f"{target.replace('-file', '')}:/", run.stderr)


class TestPlainTests(FunctionalTest):
    @each_target()
    def test_plain_testcases_and_functions_are_isolated_through_current(self, target):
        run = self.run_scenario("plain", target=target)
        self.assertRan(run, 4)
        self.assertNotIn("FAIL", run.stderr)


class TestClassLevel(FunctionalTest):
    @each_target()
    def test_setupclass_and_setuptestdata_rolled_back_after_class(self, target):
        run = self.run_scenario("classlevel", target=target, expect=1)
        self.assertRegex(run.stderr, r"test_1_sees_class_data_and_changes_it .* ok")
        self.assertRegex(run.stderr, r"test_2_class_data_restored .* ok")
        self.assertRegex(run.stderr, r"test_nothing_left .* ok")
        self.assertIn("RuntimeError: setUpTestData broke on purpose", run.stderr)
        self.assertNotIn("test_never_runs", run.stderr)
        self.assertIn("FAILED (errors=1)", run.stderr)


class TestFailures(FunctionalTest):
    @each_target()
    def test_failing_and_erroring_tests_leave_nothing_behind(self, target):
        run = self.run_scenario("failures", target=target, expect=1)
        self.assertRegex(run.stderr, r"test_4_clean .* ok")
        self.assertIn("FAILED (failures=1, errors=4)", run.stderr)
        self.assertIn("sqltx_no_such_table", run.stderr)
        # a class's set-up error is named by the class, not by unittest's stand-in
        self.assertIn("ERROR: setUpClass (test_failures.TestBrokenClassData)", run.stderr)
        self.assertIn("RuntimeError: the class data broke on purpose", run.stderr)
        self.assertNotIn("_ErrorHolder", run.stderr)


class TestWarnings(FunctionalTest):
    @each_target("postgresql+psycopg2", "mysql+pymysql", "sqlite")
    def test_warnings_while_the_schema_is_built_are_printed_once(self, target):
        # A schema with a foreign key cycle: create_all itself does not warn
        # about it, so neither does the run; the fixture's warning, once.
        run = self.run_scenario("cycle", target=target)
        self.assertNotIn("SAWarning", run.stderr)
        self.assertEqual(run.stderr.count("UserWarning: the fixture's own warning"), 1, run.stderr)


class TestLongRuns(FunctionalTest):
    """Tests that each write 100 rows and count them, for thousands of
    tests: every test sees only its own rows and the class's, and on
    PostgreSQL, where rolled-back rows stay in the tables, the run is built
    afresh before they pile up. (How long the tests take, first against
    last, is measured by bench/soak.py, not asserted here.)"""

    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "sqlite")
    def test_rolled_back_rows_do_not_pile_up(self, target):
        # PostgreSQL is where rolled-back rows pile up: the long run there
        tests = SOAK_TESTS if target == "postgresql+psycopg2" else 2000
        run = self.run_scenario("longrun", target=target, env={"LONGRUN_TESTS": str(tests)}, timeout=900,
                                verbose=False)
        self.assertRan(run, tests + 1)
        self.assertRegex(run.stderr, r"\nOK\n")
        if target.startswith("postgresql"):
            found = re.search(r"largest sqltx_item: (\d+) bytes, after (\d+) tests", run.stdout)
            self.assertIsNotNone(found, run.output[-2000:])
            self.assertEqual(int(found.group(2)), tests)
            # 2,000 tests' rows alone take about 3 times GROWTH_BYTES; the
            # size is looked up at most every INTERVAL_S, hence the margin.
            self.assertLessEqual(int(found.group(1)), 2 * GROWTH_BYTES, found.group(0))
            self.assertRegex(run.stderr, r"built afresh \d+ time\(s\) between tests")


class TestSoak(FunctionalTest):
    def test_many_tests_with_flat_locks(self):
        # Not verbose: a failure message with 20,000 "ok" lines helps nobody.
        run = self.run_scenario("soak", env={"SOAK_TESTS": str(SOAK_TESTS)}, timeout=600, verbose=False)
        self.assertRan(run, SOAK_TESTS + 1)
        self.assertRegex(run.stderr, r"\nOK\n")
        samples = SOAK_TESTS // 500
        self.assertRegex(run.stdout,
                         rf"locks held by the test connection, every 500 tests: \[\d+(, \d+){{{samples - 1}}}\]")
