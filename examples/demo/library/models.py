from datetime import date

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Member(Base):
    __tablename__ = "member"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    loans: Mapped[list["Loan"]] = relationship(back_populates="member")


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    isbn: Mapped[str] = mapped_column(String(20), unique=True)


class Loan(Base):
    __tablename__ = "loan"
    # One open loan per book: the database enforces it, not just the app.
    __table_args__ = (UniqueConstraint("book_id", "returned_on", name="one_open_loan_per_book"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("book.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    due_on: Mapped[date]
    returned_on: Mapped[date] = mapped_column(default=date.max)
    member: Mapped[Member] = relationship(back_populates="loans")
