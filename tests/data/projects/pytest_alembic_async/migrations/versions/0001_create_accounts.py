"""create accounts

Revision ID: a1c0ffee0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "a1c0ffee0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_index("ux_accounts_email", "accounts", ["email"], unique=True)


def downgrade():
    op.drop_index("ux_accounts_email", table_name="accounts")
    op.drop_table("accounts")
