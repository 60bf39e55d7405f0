"""drop legacy code

Revision ID: 6f0000000006
Revises: 5e0000000005
"""

import sqlalchemy as sa
from alembic import op

revision = "6f0000000006"
down_revision = "5e0000000005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("customers", "legacy_code")


def downgrade() -> None:
    op.add_column("customers", sa.Column("legacy_code", sa.Text))
