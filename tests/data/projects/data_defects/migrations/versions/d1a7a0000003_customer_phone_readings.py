"""customer phone readings

Revision ID: d1a7a0000003
Revises: d1a7a0000002
"""

import sqlalchemy as sa
from alembic import op

revision = "d1a7a0000003"
down_revision = "d1a7a0000002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("phone", sa.String(20)))
    # no value of type bit(8) is generated: the table is named in a note, not failed
    op.create_table(
        "readings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("bits", sa.dialects.postgresql.BIT(8), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("readings")
    op.drop_column("customers", "phone")
