from sqlalchemy import String, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "sqltx_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Reference(Base):
    __tablename__ = "sqltx_reference"
    id: Mapped[int] = mapped_column(primary_key=True)


def seed(connection):
    connection.execute(insert(Reference), [{"id": 1}, {"id": 2}])


def items(conn):
    return list(conn.execute(select(Item.name).order_by(Item.name)).scalars())


def references(conn):
    return conn.execute(select(func.count()).select_from(Reference)).scalar_one()
