"""The run's stand-ins for the app's named schemas: their names, the
translation the app's engines get, and the refusal of SQL text that names
their tables."""

import unittest

from sqlalchemy import create_engine

from nose2_sqltx.dialects.base import RUN_NAME_LENGTH, new_run_name
from nose2_sqltx.dialects.postgresql import private_schema, run_lock_key
from nose2_sqltx.redirect import _EngineSwap
from nose2_sqltx.schema import untranslated_names

RUN = "sqltx_run_0123456789ab"


class TestStandInNames(unittest.TestCase):
    def test_a_plain_name_is_the_runs_name_and_the_schemas(self):
        self.assertEqual(private_schema(RUN, "billing"), f"{RUN}_billing")
        self.assertEqual(len(new_run_name()), RUN_NAME_LENGTH)

    def test_other_names_are_plain_unique_and_within_postgresqls_limit(self):
        names = [private_schema(RUN, s) for s in ("Billing", "billing-eu", "billing_eu", "x" * 80, "x" * 81)]
        self.assertEqual(len(set(names)), len(names), names)
        for name in names:
            self.assertRegex(name, r"^[a-z_][a-z0-9_]{0,62}$")
            self.assertTrue(name.startswith(RUN + "_"))

    def test_a_stand_in_is_locked_by_its_runs_lock(self):
        self.assertEqual(run_lock_key(private_schema(RUN, "billing")), run_lock_key(RUN))
        self.assertNotEqual(run_lock_key(RUN), run_lock_key("sqltx_run_ba9876543210"))


class TestUntranslatedNames(unittest.TestCase):
    def setUp(self):
        self.find = untranslated_names([("billing", "ledger")])

    def test_text_naming_a_table_of_a_translated_schema(self):
        for sql, name in (("SELECT * FROM billing.ledger", "billing.ledger"),
                          ('UPDATE "billing"."ledger" SET id = 1', '"billing"."ledger"'),
                          ("select 1 from BILLING . Ledger l", "BILLING . Ledger"),
                          ("SELECT 'it''s' FROM billing.ledger", "billing.ledger")):
            with self.subTest(sql=sql):
                self.assertEqual(self.find(sql), name)

    def test_what_is_let_through(self):
        for sql in (f"SELECT * FROM {RUN}_billing.ledger",  # SQLAlchemy's translation
                    "SELECT * FROM ledger", "SELECT * FROM billing.ledgers", "SELECT * FROM other.billing.ledger",
                    "SELECT 'billing.ledger'", "SELECT 'it''s billing.ledger'"):
            with self.subTest(sql=sql):
                self.assertIsNone(self.find(sql))

    def test_nothing_to_find_without_tables_in_stand_ins(self):
        self.assertIsNone(untranslated_names([]))


class TestAppEnginesTranslation(unittest.TestCase):
    def test_the_runs_map_on_top_of_the_apps_own_and_put_back(self):
        run = create_engine("sqlite://")
        run.update_execution_options(schema_translate_map={"billing": "run_billing", "audit": "run_audit"})
        app = create_engine("sqlite://", execution_options={"schema_translate_map": {None: "audit"}})
        swap = _EngineSwap(app)
        swap.point(run)
        self.assertEqual(app.get_execution_options()["schema_translate_map"],
                         {None: "run_audit", "billing": "run_billing", "audit": "run_audit"})
        swap.restore()
        self.assertEqual(app.get_execution_options()["schema_translate_map"], {None: "audit"})

    def test_no_map_where_the_run_has_none(self):
        app = create_engine("sqlite://", execution_options={"isolation_level": "AUTOCOMMIT"})
        swap = _EngineSwap(app)
        swap.point(create_engine("sqlite://"))
        self.assertEqual(dict(app.get_execution_options()), {"isolation_level": "AUTOCOMMIT"})
        swap.restore()
