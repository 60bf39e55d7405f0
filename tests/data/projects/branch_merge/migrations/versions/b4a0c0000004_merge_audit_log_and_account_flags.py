"""merge audit log and account flags

Revision ID: b4a0c0000004
Revises: b4a0c0000002, b4a0c0000003
Create Date: 2026-11-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'b4a0c0000004'
down_revision: Union[str, Sequence[str], None] = ('b4a0c0000002', 'b4a0c0000003')
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    pass


def downgrade() -> None:
    """Downgrade schema."""
    pass
