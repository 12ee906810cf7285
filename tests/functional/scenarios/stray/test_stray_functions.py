"""The same under pytest, for test functions (collected by pytest only)."""

from stray_app import add_item, item_names

from nose2_sqltx import allow_database


def test_refused_function():
    add_item("stray")


@allow_database
def test_marked_function():
    add_item("marked function")
    assert item_names() == ["marked function"]
