"""order status check

Built from the model's column at import time: SQLAlchemy attaches this constraint to the
model's table as a side effect.

Revision ID: b2c0ffee0002
Revises: a1c0ffee0001
"""

import sqlalchemy as sa
from alembic import op
from shop.models import ORDER_STATUSES, Order

revision = "b2c0ffee0002"
down_revision = "a1c0ffee0001"
branch_labels = None
depends_on = None

STATUS_CHECK = sa.CheckConstraint(Order.status.in_(ORDER_STATUSES), name="ck_orders_status")


def upgrade() -> None:
    op.execute(sa.schema.AddConstraint(STATUS_CHECK))


def downgrade() -> None:
    op.drop_constraint("ck_orders_status", "orders", type_="check")
