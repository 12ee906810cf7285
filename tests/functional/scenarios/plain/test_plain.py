import unittest

from scenario_models import Item, items, references

import nose2_sqltx


def write_and_check(label):
    scope = nose2_sqltx.current()
    assert items(scope.connection) == [], "an earlier test leaked"
    assert references(scope.connection) == 2
    scope.session.add(Item(name=label))
    scope.session.commit()
    assert items(scope.connection) == [label]


class TestPlain(unittest.TestCase):
    def test_one(self):
        write_and_check("one")

    def test_two(self):
        write_and_check("two")


def test_function_one():
    write_and_check("f1")


def test_function_two():
    write_and_check("f2")
