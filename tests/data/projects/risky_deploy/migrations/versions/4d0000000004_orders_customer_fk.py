"""orders customer fk

Revision ID: 4d0000000004
Revises: 3c0000000003
"""

from alembic import op

revision = "4d0000000004"
down_revision = "3c0000000003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_foreign_key("fk_orders_customer", "orders", "customers", ["customer_id"], ["id"])


def downgrade() -> None:
    op.drop_constraint("fk_orders_customer", "orders", type_="foreignkey")
