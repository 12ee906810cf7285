"""position"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.add_column("sqltx_shelf", sa.Column("position", sa.Integer, nullable=False, server_default="0"))
    op.execute("INSERT INTO sqltx_shelf (id, label) VALUES (1, 'seeded by a migration')")


def downgrade():
    op.drop_column("sqltx_shelf", "position")
