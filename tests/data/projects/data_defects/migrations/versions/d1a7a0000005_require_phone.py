"""require phone

Revision ID: d1a7a0000005
Revises: d1a7a0000004
"""

import sqlalchemy as sa
from alembic import op

revision = "d1a7a0000005"
down_revision = "d1a7a0000004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the defect: SET NOT NULL over rows that hold NULL, with no backfill
    op.alter_column("customers", "phone", existing_type=sa.String(20), nullable=False)


def downgrade() -> None:
    op.alter_column("customers", "phone", existing_type=sa.String(20), nullable=True)
