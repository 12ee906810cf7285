"""The query assertions' pure parts: a statement with its values aside, the
tables it touches (no database)."""

import unittest

from sqlalchemy import Column, Integer, MetaData, Table

from nose2_sqltx.queries import QueryFilter, normalise, tables_touched


class TestNormalise(unittest.TestCase):
    def test_values_and_parameters_of_every_style_are_one_mark(self):
        for sql in ("SELECT * FROM t WHERE a = %(a_1)s AND b = 'x''y' AND c = 42",
                    "SELECT * FROM t WHERE a = %s AND b = ? AND c = 4.5",
                    "SELECT * FROM t WHERE a = $1 AND b = :b AND c = 7",
                    "select  *\nFROM t WHERE a = :a_2 AND b = 'z' AND c = 0"):
            with self.subTest(sql=sql):
                self.assertEqual(normalise(sql).upper(), "SELECT * FROM T WHERE A = ? AND B = ? AND C = ?")

    def test_in_lists_of_any_length_are_one(self):
        self.assertEqual(normalise("SELECT 1 FROM t WHERE id IN (%s, %s, %s)"),
                         normalise("SELECT 1 FROM t WHERE id IN (?)"))
        self.assertEqual(normalise("SELECT 1 FROM t WHERE id IN (__[POSTCOMPILE_id_1])"),
                         "SELECT ? FROM t WHERE id IN (...)")

    def test_names_casts_and_numbers_in_names_stay(self):
        self.assertEqual(normalise("SELECT t1.c2::int FROM t1 WHERE t1.c2 = $12"),
                         "SELECT t1.c2::int FROM t1 WHERE t1.c2 = ?")
        self.assertNotEqual(normalise("SELECT a FROM t1"), normalise("SELECT a FROM t2"))


class TestTablesTouched(unittest.TestCase):
    def test_from_join_into_update_delete(self):
        self.assertEqual(tables_touched('SELECT 1 FROM a AS x JOIN "B" ON x.id = "B".id, c y WHERE 1'), {"a", "b"})
        self.assertEqual(tables_touched("SELECT 1 FROM a, b AS bb, s.c WHERE 1"), {"a", "b", "c"})
        self.assertEqual(tables_touched("INSERT INTO billing.ledger (id) VALUES (?)"), {"ledger"})
        self.assertEqual(tables_touched("UPDATE `items` SET x = 1"), {"items"})
        self.assertEqual(tables_touched("DELETE FROM items WHERE id = 1"), {"items"})
        self.assertEqual(tables_touched("SELECT 1"), set())

    def test_a_column_of_the_same_name_is_not_the_table(self):
        self.assertFalse(QueryFilter(table="book")("SELECT author.book FROM author"))
        self.assertTrue(QueryFilter(table="book")("SELECT author.book FROM author JOIN book ON true"))

    def test_a_table_object_or_name_and_a_pattern(self):
        table = Table("Orders", MetaData(), Column("id", Integer, primary_key=True))
        self.assertTrue(QueryFilter("^select", table)('select 1 from "Orders"'))
        self.assertFalse(QueryFilter("^insert", table)('select 1 from "Orders"'))
        self.assertEqual(QueryFilter("^insert", "Orders").describe(), " matching '^insert' and touching orders")
