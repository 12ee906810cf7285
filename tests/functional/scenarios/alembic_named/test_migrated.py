import unittest

from billing_tables import entry, ledger
from sqlalchemy import func, inspect, select, text

from nose2_sqltx import DatabaseTest, UntranslatedSchemaError


class TestMigratedIntoStandIns(DatabaseTest, unittest.TestCase):
    def test_the_migrations_built_the_stand_in_and_seeded_it(self):
        own = self.connection.get_execution_options()["schema_translate_map"]["billing"]
        self.assertRegex(own, r"^sqltx_run_[0-9a-f]{12}_billing$")
        tables = inspect(self.connection).get_table_names(schema=own)
        self.assertEqual(sorted(tables), ["entry", "ledger"])
        self.assertIn("closed", [c["name"] for c in inspect(self.connection).get_columns("ledger", schema=own)])
        self.assertEqual(self.connection.scalar(text("SELECT to_regnamespace('billing')")), None)
        self.assertEqual(self.connection.execute(select(ledger.c.owner)).scalars().all(), ["seeded by a migration"])

    def test_1_writes_are_isolated(self):
        self.connection.execute(ledger.insert().values(id=2, owner="mine"))
        self.connection.execute(entry.insert().values(id=2, ledger_id=2, cents=5))
        self.connection.commit()
        self.assertEqual(self.connection.scalar(select(func.sum(entry.c.cents))), 105)

    def test_2_the_next_test_sees_the_seed_alone(self):
        self.assertEqual(self.connection.scalar(select(func.count()).select_from(ledger)), 1)
        self.assertEqual(self.connection.scalar(select(func.sum(entry.c.cents))), 100)

    def test_text_naming_a_migrated_table_is_refused(self):
        with self.assertRaises(UntranslatedSchemaError):
            self.connection.execute(text("SELECT count(*) FROM billing.entry"))
