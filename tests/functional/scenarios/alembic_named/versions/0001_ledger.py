"""the billing schema and its ledger"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.execute("CREATE SCHEMA IF NOT EXISTS billing")
    op.create_table("ledger", sa.Column("id", sa.Integer, primary_key=True), sa.Column("owner", sa.String(40)),
                    schema="billing")


def downgrade():
    op.drop_table("ledger", schema="billing")
