"""safe changes

Revision ID: 7a0000000007
Revises: 6f0000000006
"""

import sqlalchemy as sa
from alembic import op

revision = "7a0000000007"
down_revision = "6f0000000006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column("orders", sa.Column("shipped", sa.Boolean, server_default=sa.false()))
    op.alter_column("customers", "email", type_=sa.String(320), existing_type=sa.String(200))
    with op.get_context().autocommit_block():
        op.create_index("ix_orders_shipped", "orders", ["shipped"], postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index("ix_orders_shipped", "orders")
    op.alter_column("customers", "email", type_=sa.String(200))
    op.drop_column("orders", "shipped")
