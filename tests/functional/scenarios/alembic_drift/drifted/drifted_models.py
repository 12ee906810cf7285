"""Models that moved on without a migration: a longer label, a new column,
a new table, and position left out."""

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Shelf(Base):
    __tablename__ = "sqltx_shelf"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str | None] = mapped_column(String(80))
    colour: Mapped[str | None] = mapped_column(String(20))


class Book(Base):
    __tablename__ = "sqltx_book"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("sqltx_shelf.id"))
