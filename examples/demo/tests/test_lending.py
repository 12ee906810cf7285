import unittest
from datetime import date

from library.models import Book, Loan, Member
from library.service import LendingError, give_back, lend, overdue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from nose2_sqltx import DatabaseTest

TODAY = date(2026, 11, 22)


class LibraryTest(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        # Once per class, inside the class's savepoint: every test sees these.
        cls.session.add_all([
            Member(id=1, name="Ada", email="ada@example.org"),
            Member(id=2, name="Grace", email="grace@example.org"),
            *[Book(id=i, title=f"Book {i}", isbn=f"978-{i:04d}") for i in range(1, 6)],
        ])
        cls.session.commit()


class TestLending(LibraryTest):
    def test_lend_commits_through_the_apps_own_session(self):
        loan_id = lend(self.engine, book_id=1, member_id=1, today=TODAY)
        loan = self.session.get(Loan, loan_id)
        self.assertEqual(loan.due_on, date(2026, 12, 13))

    def test_every_test_starts_from_the_class_data(self):
        self.assertEqual(self.session.scalars(select(Loan)).all(), [])
        self.assertEqual(len(self.session.scalars(select(Book)).all()), 5)

    def test_at_most_three_books(self):
        for book in (1, 2, 3):
            lend(self.engine, book_id=book, member_id=1, today=TODAY)
        with self.assertRaises(LendingError):
            lend(self.engine, book_id=4, member_id=1, today=TODAY)

    def test_a_book_cannot_be_lent_twice(self):
        lend(self.engine, book_id=1, member_id=1, today=TODAY)
        with self.assertRaises(IntegrityError):
            lend(self.engine, book_id=1, member_id=2, today=TODAY)
        # The failed commit was rolled back; the test (and the app) go on.
        lend(self.engine, book_id=2, member_id=2, today=TODAY)

    def test_give_back_then_lend_again(self):
        lend(self.engine, book_id=1, member_id=1, today=TODAY)
        give_back(self.engine, book_id=1, today=TODAY)
        lend(self.engine, book_id=1, member_id=2, today=TODAY)


class TestOverdue(LibraryTest):
    def test_overdue_lists_open_loans_past_due(self):
        lend(self.engine, book_id=1, member_id=2, today=date(2026, 10, 1))
        lend(self.engine, book_id=2, member_id=1, today=TODAY)
        self.assertEqual(overdue(self.engine, TODAY), [("Grace", "Book 1")])

    def test_returned_books_are_not_overdue(self):
        lend(self.engine, book_id=1, member_id=2, today=date(2026, 10, 1))
        give_back(self.engine, book_id=1, today=date(2026, 10, 5))
        self.assertEqual(overdue(self.engine, TODAY), [])
