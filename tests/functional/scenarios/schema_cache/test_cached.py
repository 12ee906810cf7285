"""The migrated schema, whether built from the migrations or replayed from the cache.

SQLTX_CATALOG_OUT names a file this writes the run's catalog to (its tables,
columns, defaults, indexes, constraints, types, sequences and rows, with the
run's own schema names made plain), for the functional tests to compare.
"""

import json
import os
import unittest

from shelf_kinds import KINDS
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text

from nose2_sqltx import DatabaseTest

#: (SQL text naming billing.ledger is refused: the table is in the run's stand-in for billing)
LEDGER = Table("ledger", MetaData(), Column("id", Integer), Column("shelf_id", Integer), schema="billing")
CATALOG = {
    "columns": "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
               "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
               "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
               "AND d.adnum = a.attnum WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind = 'r' "
               "AND n.nspname LIKE 'sqltx_run_%' ORDER BY 1, 2, 3",
    "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes "
               "WHERE schemaname LIKE 'sqltx_run_%' ORDER BY 1, 2, 3",
    "constraints": "SELECT n.nspname, conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                   "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname LIKE 'sqltx_run_%' ORDER BY 1, 2",
    "types": "SELECT n.nspname, t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
             "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname LIKE 'sqltx_run_%' "
             "ORDER BY 1, 2, e.enumsortorder",
    "sequences": "SELECT schemaname, sequencename, last_value FROM pg_sequences "
                 "WHERE schemaname LIKE 'sqltx_run_%' ORDER BY 1, 2",
    "kinds": "SELECT id, name, since FROM sqltx_kind ORDER BY id",
    "version": "SELECT version_num FROM alembic_version",
}


class TestCachedSchema(DatabaseTest, unittest.TestCase):
    def test_the_migrations_data(self):
        names = self.connection.execute(text("SELECT name FROM sqltx_kind ORDER BY id")).scalars().all()
        self.assertEqual(names, KINDS)
        self.assertEqual(self.connection.execute(text("SELECT version_num FROM alembic_version")).scalar(), "0002")

    def test_defaults_and_named_schemas(self):
        self.connection.execute(text("INSERT INTO sqltx_shelf (kind) VALUES ('wall')"))
        self.assertEqual(self.connection.execute(text("SELECT label FROM sqltx_shelf")).scalar(), "100% oak")
        shelf = self.connection.execute(text("SELECT id FROM sqltx_shelf")).scalar()
        self.connection.execute(insert(LEDGER).values(shelf_id=shelf))
        self.assertEqual(self.connection.execute(select(func.count()).select_from(LEDGER)).scalar(), 2)

    def test_isolated(self):
        self.assertEqual(self.connection.execute(text("SELECT count(*) FROM sqltx_shelf")).scalar(), 0)
        self.assertEqual(self.connection.execute(select(func.count()).select_from(LEDGER)).scalar(), 1)

    def test_catalog(self):
        out = os.environ.get("SQLTX_CATALOG_OUT")
        own = self.connection.execute(text("SELECT current_schema()")).scalar()
        self.assertTrue(own.startswith("sqltx_run_"), own)
        catalog = {name: [[str(v).replace(own, "RUN") for v in row] for row in self.connection.execute(text(sql))]
                   for name, sql in CATALOG.items()}
        catalog["ledger"] = [list(row) for row in self.connection.execute(select(LEDGER).order_by(LEDGER.c.id))]
        self.assertTrue(catalog["columns"] and catalog["indexes"] and catalog["types"], catalog)
        if out:
            with open(out, "w") as f:
                json.dump(catalog, f, indent=1)


@unittest.skipUnless(os.environ.get("SQLTX_RAW_COMMIT"), "only when the functional test asks for it")
class TestARawCommit(DatabaseTest, unittest.TestCase):
    """Runs first (by name): its COMMIT ends the run's transaction, and the
    run is built again, from the recording, before the tests above run."""

    def test_commit(self):
        self.connection.execute(text("INSERT INTO sqltx_shelf (label) VALUES ('committed')"))
        self.connection.execute(text("COMMIT"))
