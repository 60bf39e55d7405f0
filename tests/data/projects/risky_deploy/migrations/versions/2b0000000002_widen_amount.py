"""widen amount

Revision ID: 2b0000000002
Revises: 1a0000000001
"""

import sqlalchemy as sa
from alembic import op

revision = "2b0000000002"
down_revision = "1a0000000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("orders", "amount", type_=sa.Numeric(12, 2))


def downgrade() -> None:
    op.alter_column("orders", "amount", type_=sa.Integer)
