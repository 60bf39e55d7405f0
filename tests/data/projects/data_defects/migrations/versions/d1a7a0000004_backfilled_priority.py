"""backfilled priority

Revision ID: d1a7a0000004
Revises: d1a7a0000003
"""

import sqlalchemy as sa
from alembic import op

revision = "d1a7a0000004"
down_revision = "d1a7a0000003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # clean: added nullable, backfilled, then SET NOT NULL
    op.add_column("orders", sa.Column("priority", sa.Integer()))
    op.execute("UPDATE orders SET priority = 0")
    op.alter_column("orders", "priority", nullable=False)


def downgrade() -> None:
    op.drop_column("orders", "priority")
