"""customers orders tags

Revision ID: d1a7a0000001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "d1a7a0000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    kind = sa.Enum("retail", "wholesale", name="order_kind")
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(120), nullable=False, unique=True),
        sa.Column("name", sa.Text()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("kind", kind, nullable=False),
        sa.Column("quantity", sa.Integer(), sa.CheckConstraint("quantity > 0"), nullable=False),
        sa.Column("total", sa.Numeric(10, 2), sa.CheckConstraint("total >= 0"), nullable=False),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
        sa.Column("shipped_at", sa.DateTime()),
        sa.Column("note", sa.Text()),
        sa.CheckConstraint("shipped_at > placed_at", name="ck_orders_shipped_after_placed"),
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("label", sa.Text(), nullable=False, unique=True),
    )


def downgrade() -> None:
    op.drop_table("tags")
    op.drop_table("orders")
    op.drop_table("customers")
    sa.Enum(name="order_kind").drop(op.get_bind())
