"""add status

Revision ID: d1a7a0000002
Revises: d1a7a0000001
"""

import sqlalchemy as sa
from alembic import op

revision = "d1a7a0000002"
down_revision = "d1a7a0000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the defect: NOT NULL without a server_default fails on every table with rows
    op.add_column("orders", sa.Column("status", sa.Text(), nullable=False))


def downgrade() -> None:
    op.drop_column("orders", "status")
