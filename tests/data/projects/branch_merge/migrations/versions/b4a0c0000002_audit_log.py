"""audit log

Revision ID: b4a0c0000002
Revises: b4a0c0000001
Create Date: 2026-11-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'b4a0c0000002'
down_revision: Union[str, Sequence[str], None] = 'b4a0c0000001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.execute("CREATE SEQUENCE audit_seq")
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), server_default=sa.text("nextval('audit_seq')"), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("audit_log")
    op.execute("DROP SEQUENCE audit_seq")
