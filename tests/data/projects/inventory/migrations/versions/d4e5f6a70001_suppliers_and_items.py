"""suppliers and items

Revision ID: d4e5f6a70001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "d4e5f6a70001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppliers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=120), nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(length=32), nullable=False, unique=True),
        sa.Column("supplier_id", sa.Integer(), sa.ForeignKey("suppliers.id"), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("items")
    op.drop_table("suppliers")
