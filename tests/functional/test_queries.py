"""Query assertions (assertNumQueries, assertMaxQueries, assertNoRepeatedQueries)
and show-queries, run through nose2 on the scenario ``queries``: an app page
with a lazy load per author (N+1) and one with selectinload."""

import re

from tests.support import FunctionalTest, each_target

OUTCOME = re.compile(r"^(test_\w+) \(([\w.]+)\) \.\.\. (ok|FAIL|ERROR)$", re.M)


class TestQueryAssertions(FunctionalTest):
    def outcomes(self, run):
        return {name: outcome for name, _, outcome in OUTCOME.findall(run.stderr)}

    @each_target()
    def test_counts_ceilings_filters_and_repeats(self, target):
        run = self.run_scenario("queries", "test_queries", target=target, expect=1)
        outcomes = self.outcomes(run)
        self.assertEqual(len(outcomes), 9, run.output)
        for name, outcome in outcomes.items():
            self.assertEqual(outcome, "FAIL" if name.startswith("test_fails_") else "ok", f"{name}:\n{run.output}")
        # the N+1 check: the statement with its values as ?, how often, and the app's line that sent it
        # (SQLAlchemy 2.0 labels a lazy load's columns: book.id AS book_id)
        self.assertRegex(run.stderr, r"AssertionError: 1 statement\(s\) sent more than 1 time\(s\) \(an N\+1 "
                                     r"pattern\? .*\)\n- 3 times: SELECT book\.id(?: AS book_id)?, book\.title"
                                     r"(?: AS book_title)?, book\.author_id(?: AS book_author_id)? "
                                     r"FROM book WHERE \?(?:::INTEGER)? = book\.author_id ORDER BY book\.id\n"
                                     r"    from shelf\.py:36 in page_lazy \(3 times\)\n")
        self.assertIn("AssertionError: 4 queries sent, at most 2 expected:\n1. SELECT author.id", run.stderr)
        self.assertIn("AssertionError: 3 queries touching book sent, 1 expected:\n1. SELECT book.id", run.stderr)
        # show-queries: a failed test's report ends with its SQL, setUp's included
        shown = run.stderr.split("FAIL: test_fails_and_shows_its_statements", 1)[1].split("=" * 70, 1)[0]
        self.assertRegex(shown, r"AssertionError: 1 != 2\nnose2-sqltx: the test sent \d+ statement\(s\):\n"
                                r"1\. INSERT INTO author .*\n(?:\d+\. INSERT .*\n)*\d+\. SELECT 'shown on failure'\n")
        passed = run.stderr.split("FAIL:", 1)[0]
        self.assertNotIn("the test sent", passed)

    @each_target("postgresql+asyncpg", "postgresql+psycopg_async", "sqlite+aiosqlite", "mysql+aiomysql")
    def test_in_async_tests(self, target):
        run = self.run_scenario("queries", "test_async_queries", target=target, expect=1)
        self.assertEqual(self.outcomes(run), {"test_max_and_count_with_a_table": "ok",
                                              "test_fails_async_page_repeats_a_statement": "FAIL"}, run.output)
        # the call site is found through SQLAlchemy's greenlets, in the app's coroutine
        self.assertRegex(run.stderr, r"- 3 times: SELECT book\.title FROM book WHERE book\.author_id = \?(::INTEGER)?\n"
                                     r"    from shelf\.py:48 in page_async_per_author \(3 times\)\n")
