import os
import unittest

from named_models import Account, Invoice, Ledger, engine, open_ledger
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from nose2_sqltx import DatabaseTest, UntranslatedSchemaError


class TestNamedSchemas(DatabaseTest, unittest.TestCase):
    def assert_empty(self):
        for model in (Ledger, Invoice, Account):
            self.assertEqual(self.session.scalar(select(func.count()).select_from(model)), 0, model)

    def test_the_apps_commits_and_the_tests_session_see_the_same_rows(self):
        self.assert_empty()
        ledger_id = open_ledger("ada", 1200)
        # reset-sequences: every test's first ledger is number 1
        self.assertEqual(ledger_id, 1)
        invoice = self.session.scalars(select(Invoice).join(Ledger).where(Ledger.owner == "ada")).one()
        self.assertEqual(invoice.cents, 1200)
        with engine.connect() as conn:  # the app's engine, redirected
            self.assertEqual(conn.scalar(select(func.sum(Invoice.cents))), 1200)

    def test_an_engine_the_app_makes_during_the_run_finds_them_too(self):
        late = create_engine(os.environ["SQLTX_DSN"])  # joins the test transaction
        self.addCleanup(late.dispose)
        with Session(late) as session:
            session.add(Ledger(owner="late"))
            session.commit()
        self.assertEqual(self.session.scalars(select(Ledger.owner)).all(), ["late"])

    def test_every_test_starts_from_empty_tables(self):
        self.assert_empty()
        self.assertEqual(open_ledger("grace", 5), 1)
        self.assertEqual(open_ledger("linus", 7), 2)

    def test_the_tables_are_not_where_their_names_say(self):
        self.assert_empty()
        open_ledger("edsger", 3)
        where = self.connection.execute(text(
            "SELECT table_schema FROM information_schema.tables WHERE table_name IN ('ledger', 'invoice') "
            "AND table_schema LIKE 'sqltx_run%' ORDER BY table_name")).scalars().all()
        self.assertEqual(len(where), 2, where)
        self.assertRegex(where[0], r"^sqltx_run_[0-9a-f]{12}_billing$")
        self.assertEqual(self.connection.scalar(text("SELECT to_regnamespace('billing')")), None)

    def test_sql_text_naming_them_is_refused_before_it_runs(self):
        for sql in ("SELECT count(*) FROM billing.ledger", 'DELETE FROM "billing"."invoice"',
                    "select * from Billing . Ledger"):
            with self.subTest(sql=sql), self.assertRaises(UntranslatedSchemaError) as caught:
                self.connection.execute(text(sql))
            self.assertIn("build the statement from the Table", str(caught.exception))
        # text about other things runs, and the connection goes on
        self.assertEqual(self.connection.scalar(text("SELECT 'billing.ledger is a name'")), "billing.ledger is a name")
        self.assertEqual(self.session.scalar(select(func.count()).select_from(Ledger)), 0)
