"""invoice number

Revision ID: 0d0e00000002
Revises: 0d0e00000001
Create Date: 2026-11-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0d0e00000002'
down_revision: Union[str, Sequence[str], None] = '0d0e00000001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("invoices", sa.Column("number", sa.Text(), nullable=True))

