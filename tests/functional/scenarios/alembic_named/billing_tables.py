"""The app's view of the migrated tables (the migrations, not this module, make them)."""

from sqlalchemy import Boolean, Column, ForeignKey, Integer, MetaData, String, Table

metadata = MetaData(schema="billing")
ledger = Table("ledger", metadata, Column("id", Integer, primary_key=True), Column("owner", String(40)),
               Column("closed", Boolean, nullable=False, server_default="false"))
entry = Table("entry", metadata, Column("id", Integer, primary_key=True),
              Column("ledger_id", ForeignKey("billing.ledger.id"), nullable=False),
              Column("cents", Integer, nullable=False))
