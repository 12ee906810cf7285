"""An app whose tables name their schemas: a ledger in ``billing``, invoices
in ``billing`` too, and accounts (no schema) whose rows point at the ledger;
its engine and session factory made at import time, as apps do."""

from sqlalchemy import ForeignKey, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class Ledger(Base):
    __tablename__ = "ledger"
    __table_args__ = ({"schema": "billing"},)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40), unique=True)


class Invoice(Base):
    __tablename__ = "invoice"
    __table_args__ = ({"schema": "billing"},)
    id: Mapped[int] = mapped_column(primary_key=True)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("billing.ledger.id"))
    cents: Mapped[int]


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("billing.ledger.id"))


# The app's own setting: redirected in the run, never connected to.
engine = create_engine("postgresql+psycopg2://app:s3cret-pw@app-db.invalid:5432/app")
SessionLocal = sessionmaker(bind=engine)


def open_ledger(owner: str, cents: int) -> int:
    """App code: one ledger, an invoice and an account, committed."""
    with SessionLocal() as session:
        ledger = Ledger(owner=owner)
        session.add(ledger)
        session.flush()
        session.add_all([Invoice(ledger_id=ledger.id, cents=cents), Account(ledger_id=ledger.id)])
        session.commit()
        return ledger.id
