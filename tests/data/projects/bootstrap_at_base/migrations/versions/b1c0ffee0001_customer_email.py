"""customer email

Revision ID: b1c0ffee0001
Revises: 
Create Date: 2026-11-02 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'b1c0ffee0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("customers", sa.Column("email", sa.Text(), nullable=True))
    op.create_index("ux_customers_email", "customers", ["email"], unique=True)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ux_customers_email", table_name="customers")
    op.drop_column("customers", "email")
