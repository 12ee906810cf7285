"""The models of the alembic_schema scenario's migrations, as they are."""

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Shelf(Base):
    __tablename__ = "sqltx_shelf"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str | None] = mapped_column(String(50))
    position: Mapped[int] = mapped_column(Integer, server_default="0")
