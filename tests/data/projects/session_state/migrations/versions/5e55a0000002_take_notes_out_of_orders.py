"""take notes out of orders

Revision ID: 5e55a0000002
Revises: 5e55a0000001
Create Date: 2026-11-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5e55a0000002'
down_revision: Union[str, Sequence[str], None] = '5e55a0000001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # keep the notes for the next revision, which moves them into their own table
    op.execute(
        "CREATE TEMPORARY TABLE moved_notes ON COMMIT DROP AS "
        "SELECT id AS order_id, note FROM orders WHERE note IS NOT NULL"
    )
    op.drop_column("orders", "note")


def downgrade() -> None:
    """Downgrade schema."""
    op.add_column("orders", sa.Column("note", sa.Text(), nullable=True))
