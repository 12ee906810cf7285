"""shelves, and a ledger in the billing schema"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.execute("CREATE SCHEMA IF NOT EXISTS billing")
    op.create_table("sqltx_shelf", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("label", sa.String(50), server_default="100% oak"))
    # (replayed with the statements after it: they must not end up in its comment)
    op.execute("COMMENT ON TABLE sqltx_shelf IS 'shelves' -- a statement that ends in a comment")
    op.create_table("ledger", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("shelf_id", sa.Integer, sa.ForeignKey("sqltx_shelf.id")), schema="billing")
