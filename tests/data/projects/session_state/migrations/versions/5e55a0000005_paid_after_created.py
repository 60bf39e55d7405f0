"""paid after created

Revision ID: 5e55a0000005
Revises: 5e55a0000004
Create Date: 2026-11-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5e55a0000005'
down_revision: Union[str, Sequence[str], None] = '5e55a0000004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_check_constraint("ck_orders_paid_after_created", "orders", "paid_at >= created_at")
    op.create_index("ix_orders_paid_at", "orders", ["paid_at"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_orders_paid_at", table_name="orders")
    op.drop_constraint("ck_orders_paid_after_created", "orders", type_="check")
