"""account status

Revision ID: a1c0ffee0002
Revises: a1c0ffee0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "a1c0ffee0002"
down_revision = "a1c0ffee0001"
branch_labels = None
depends_on = None

account_status = postgresql.ENUM("active", "closed", name="account_status", create_type=False)


def upgrade():
    account_status.create(op.get_bind())
    op.add_column(
        "accounts",
        sa.Column("status", account_status, nullable=False, server_default="active"),
    )
    op.create_index("ix_accounts_created_at", "accounts", ["created_at"])
    # a statement with a bound parameter, through the project's driver
    op.get_bind().execute(
        sa.text("UPDATE accounts SET status = 'closed' WHERE email = :email"),
        {"email": "nobody@example.org"},
    )


def downgrade():
    op.drop_index("ix_accounts_created_at", table_name="accounts")
    op.drop_column("accounts", "status")
    account_status.drop(op.get_bind())
