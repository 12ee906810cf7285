"""entries, and a seeded ledger"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    entry = op.create_table(
        "entry", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ledger_id", sa.Integer, sa.ForeignKey("billing.ledger.id"), nullable=False),
        sa.Column("cents", sa.Integer, nullable=False), schema="billing")
    op.add_column("ledger", sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),
                  schema="billing")
    ledger = sa.table("ledger", sa.column("id"), sa.column("owner"), schema="billing")
    op.bulk_insert(ledger, [{"id": 1, "owner": "seeded by a migration"}])
    op.bulk_insert(entry, [{"id": 1, "ledger_id": 1, "cents": 100}])


def downgrade():
    op.drop_column("ledger", "closed", schema="billing")
    op.drop_table("entry", schema="billing")
