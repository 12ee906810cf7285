"""only-database-tests: a test that is not a DatabaseTest (nor marked
@allow_database) fails when it uses the database, naming itself and the
engine; the scenario ``stray`` under nose2, pytest and python -m unittest."""

import re

from tests.support import FunctionalTest, each_target

NOSE2 = re.compile(r"^(\S+?)(?: \(([\w.]+)\))? \.\.\. (ok|FAIL|ERROR)$", re.M)
PYTEST = re.compile(r"^(PASSED|FAILED|ERROR) (\S+)", re.M)
REFUSED = {"test_refused_through_the_app_engine", "test_refused_even_when_swallowed",
           "test_refused_through_the_run_connection", "test_refused_function"}


def short(name: str) -> str:
    return name.rsplit(".", 1)[-1].rsplit("::", 1)[-1]


class TestOnlyDatabaseTests(FunctionalTest):
    @each_target()
    def test_under_nose2(self, target):
        run = self.run_scenario("stray", target=target, expect=1)
        outcomes = {short(m.group(2) or m.group(1)): m.group(3) for m in NOSE2.finditer(run.stderr)}
        self.assertEqual(len(outcomes), 10, run.output)
        for name, outcome in outcomes.items():
            self.assertEqual(outcome, "ERROR" if name in REFUSED else "ok", f"{name}:\n{run.output}")
        self.assertRegex(run.stderr, r"StrayAccessError: test_stray\.TestPlain\.test_refused_through_the_app_engine "
                                     r"is not a DatabaseTest, and it sent 'INSERT INTO sqltx_item .*' through "
                                     r"\S+ \(stray_app:engine\); it was refused: with only-database-tests in "
                                     r"\[sqltx\], only DatabaseTest classes use the database\. Make the class a "
                                     r"DatabaseTest, mark it \(or the test\) with @nose2_sqltx\.allow_database, "
                                     r"or keep the database out of this test")
        self.assertIn("StrayAccessError: test_stray.TestPlain.test_refused_through_the_run_connection is not a "
                      "DatabaseTest, and it sent 'SELECT 1'", run.stderr)
        self.assertIn("FAILED (errors=4)", run.stderr)

    def test_under_pytest(self):
        run = self.run_scenario("stray", "-rA", runner="pytest", expect=1)
        results = PYTEST.findall(run.stdout)
        refused = {short(name) for outcome, name in results if outcome in ("FAILED", "ERROR")}
        self.assertEqual(refused, REFUSED, run.output)
        # the swallowed refusal passes its call and errs at its scope's end (pytest's teardown)
        self.assertIn(("ERROR", "test_stray.py::TestPlain::test_refused_even_when_swallowed"), results)
        self.assertRegex(run.stdout, r"StrayAccessError: \S*test_stray_functions\.py::test_refused_function is not "
                                     r"a DatabaseTest, and it sent 'INSERT INTO sqltx_item")
        self.assertIn("3 failed, 7 passed, 1 error", run.stdout)

    def test_under_unittest_it_says_it_is_not_applied(self):
        run = self.run_scenario("stray", runner="unittest", expect=1)
        self.assertIn("nose2-sqltx: warning: only-database-tests is not applied: python -m unittest calls nothing "
                      "around a test that is not a DatabaseTest", run.stderr)
