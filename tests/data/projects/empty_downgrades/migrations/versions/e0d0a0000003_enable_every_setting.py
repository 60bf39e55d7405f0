"""enable every setting

Revision ID: e0d0a0000003
Revises: e0d0a0000002
Create Date: 2026-11-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'e0d0a0000003'
down_revision: Union[str, Sequence[str], None] = 'e0d0a0000002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.execute("UPDATE settings SET enabled = true WHERE enabled IS NULL")


def downgrade() -> None:
    """Downgrade schema."""
    pass
