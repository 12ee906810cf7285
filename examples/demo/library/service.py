"""The app's own code: it opens its own sessions from the engine it is given
and commits, as production code does."""

from datetime import date, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from .models import Book, Loan, Member

MAX_OPEN_LOANS = 3
LOAN_DAYS = 21


class LendingError(Exception):
    pass


def open_loans(session: Session, member_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(Loan).where(Loan.member_id == member_id, Loan.returned_on == date.max)
    )


def lend(engine: Engine, book_id: int, member_id: int, today: date) -> int:
    with Session(engine) as session:
        if open_loans(session, member_id) >= MAX_OPEN_LOANS:
            raise LendingError(f"member {member_id} already has {MAX_OPEN_LOANS} books")
        loan = Loan(book_id=book_id, member_id=member_id, due_on=today + timedelta(days=LOAN_DAYS))
        session.add(loan)
        session.commit()
        return loan.id


def give_back(engine: Engine, book_id: int, today: date) -> None:
    with Session(engine) as session, session.begin():
        loan = session.scalars(select(Loan).where(Loan.book_id == book_id, Loan.returned_on == date.max)).one()
        loan.returned_on = today


def overdue(engine: Engine, today: date) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Member.name, Book.title)
            .join(Loan, Loan.member_id == Member.id)
            .join(Book, Book.id == Loan.book_id)
            .where(Loan.due_on < today, Loan.returned_on == date.max)
            .order_by(Member.name)
        )
        return [tuple(row) for row in rows]
