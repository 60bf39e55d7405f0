"""index status

Revision ID: 3c0000000003
Revises: 2b0000000002
"""

from alembic import op

revision = "3c0000000003"
down_revision = "2b0000000002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_orders_status", "orders", ["status"])


def downgrade() -> None:
    op.drop_index("ix_orders_status", "orders")
