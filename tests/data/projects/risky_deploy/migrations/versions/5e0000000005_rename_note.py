"""rename note

Revision ID: 5e0000000005
Revises: 4d0000000004
"""

from alembic import op

revision = "5e0000000005"
down_revision = "4d0000000004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("orders", "note", new_column_name="remark")


def downgrade() -> None:
    op.alter_column("orders", "remark", new_column_name="note")
