"""pytest functions over two databases: the sqltx_databases fixture, configured in pyproject.toml."""

from shop import Customer, Event, counts, place_order
from sqlalchemy import select


def test_an_order_in_both(sqltx_session, sqltx_databases):
    sqltx_session.add(Customer(id=3, name="toml"))
    sqltx_session.commit()
    place_order(3, "cup")
    assert counts() == (1, 1, 1, 1)
    assert sqltx_databases["analytics"].session.scalars(select(Event.kind)).all() == ["order cup"]


def test_the_next_sees_nothing(sqltx_databases):
    assert counts() == (0, 0, 0, 0)
    assert sqltx_databases["analytics"].session.scalars(select(Event)).all() == []
