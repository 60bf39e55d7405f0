"""create tables

Revision ID: 1a0000000001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "1a0000000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # new tables: nobody can be waiting on them, whatever the revision does to them
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("legacy_code", sa.Text),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("status", sa.Text),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_orders_customer_id", "orders", ["customer_id"])


def downgrade() -> None:
    op.drop_table("orders")
    op.drop_table("customers")
