"""order notes

Revision ID: 5e55a0000003
Revises: 5e55a0000002
Create Date: 2026-11-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '5e55a0000003'
down_revision: Union[str, Sequence[str], None] = '5e55a0000002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "order_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    # the notes the previous revision took out of orders (same transaction)
    op.execute("INSERT INTO order_notes (order_id, body) SELECT order_id, note FROM moved_notes")
    op.execute("DROP TABLE moved_notes")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("order_notes")
