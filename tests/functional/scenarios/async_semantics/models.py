from sqlalchemy import ForeignKey, String, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Role(Base):
    __tablename__ = "sqltx_role"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class Customer(Base):
    __tablename__ = "sqltx_customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    role_id: Mapped[int | None] = mapped_column(ForeignKey("sqltx_role.id"))


def seed(connection):
    connection.execute(insert(Role), [{"id": 1, "name": "admin"}, {"id": 2, "name": "user"}])
