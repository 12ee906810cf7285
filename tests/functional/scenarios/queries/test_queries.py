"""The query assertions. Tests named test_fails_* fail on purpose: the
functional test reads their messages."""

import unittest

from shelf import Author, Book, add_shelf, page_eager, page_lazy
from sqlalchemy import select, text

from nose2_sqltx import DatabaseTest


class TestQueryAssertions(DatabaseTest, unittest.TestCase):
    def setUp(self):
        add_shelf(self.session)
        self.session.expire_all()

    def test_eager_page_has_no_repeats_and_two_queries(self):
        with self.assertNoRepeatedQueries(), self.assertNumQueries(2):
            lines = page_eager(self.session)
        self.assertEqual(lines[0], "author 0: book 0.0, book 0.1")

    def test_max_queries_lets_fewer_through(self):
        with self.assertMaxQueries(5):
            page_eager(self.session)
        self.assertMaxQueries(2, page_eager, self.session)

    def test_counting_only_matching_statements_or_a_table(self):
        with self.assertNumQueries(1, table=Book), self.assertNumQueries(1, table="author"), \
                self.assertNumQueries(0, matching=r"^\s*(INSERT|UPDATE|DELETE)"):
            page_eager(self.session)
        with self.assertNumQueries(1, matching="^insert", table=Author.__table__):
            self.session.add(Author(name="new"))
            self.session.flush()

    def test_repeats_up_to_the_limit_pass(self):
        with self.assertNoRepeatedQueries(3, table="book"):
            page_lazy(self.session)  # one lazy load for each of 3 authors

    def test_fails_lazy_page_repeats_a_statement(self):
        with self.assertNoRepeatedQueries():
            page_lazy(self.session)

    def test_fails_more_than_the_ceiling(self):
        with self.assertMaxQueries(2):
            page_lazy(self.session)

    def test_fails_count_of_a_table(self):
        with self.assertNumQueries(1, table="book"):
            page_lazy(self.session)

    def test_fails_and_shows_its_statements(self):
        self.connection.execute(text("SELECT 'shown on failure'"))
        self.assertEqual(1, 2)


class TestBadArguments(DatabaseTest, unittest.TestCase):
    def test_bad_arguments_are_refused(self):
        with self.assertRaisesRegex(ValueError, r"limit must be a whole number, 1 or more \(got 0\)"):
            self.assertNoRepeatedQueries(0)
        with self.assertRaisesRegex(ValueError, r"whole number, 0 or more \(got -1\)"):
            self.assertMaxQueries(-1)
        with self.assertRaisesRegex(ValueError, r"matching='\(' is not a regular expression"):
            self.assertNumQueries(1, matching="(")
        with self.assertRaisesRegex(TypeError, r"give a table's name, a Table or a mapped class"):
            self.assertNumQueries(1, table=42)
        self.assertEqual(self.session.scalars(select(Author)).all(), [])
