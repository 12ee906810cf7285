import unittest

from sqlalchemy import inspect, text

from nose2_sqltx import DatabaseTest


class TestMigratedSchema(DatabaseTest, unittest.TestCase):
    def labels(self):
        return self.connection.execute(text("SELECT label FROM sqltx_shelf ORDER BY id")).scalars().all()

    def test_1_schema_is_at_head(self):
        columns = [c["name"] for c in inspect(self.connection).get_columns("sqltx_shelf")]
        self.assertEqual(columns, ["id", "label", "position"])
        self.assertEqual(self.connection.execute(text("SELECT version_num FROM alembic_version")).scalar(), "0002")
        self.assertEqual(self.labels(), ["seeded by a migration"])

    def test_2_writes_are_isolated(self):
        self.connection.execute(text("INSERT INTO sqltx_shelf (id, label) VALUES (2, 'mine')"))
        self.connection.commit()
        self.assertEqual(len(self.labels()), 2)

    def test_3_next_test(self):
        self.assertEqual(self.labels(), ["seeded by a migration"])
