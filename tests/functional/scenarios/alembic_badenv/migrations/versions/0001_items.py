"""items"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("sqltx_shelf", sa.Column("id", sa.Integer, primary_key=True), sa.Column("label", sa.String(50)))


def downgrade():
    op.drop_table("sqltx_shelf")
