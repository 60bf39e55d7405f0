"""accounts and entries

Revision ID: e7f8a9b00001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "e7f8a9b00001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=80), nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    )
    op.create_table(
        "entry_tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entry_id", sa.Integer(), sa.ForeignKey("entries.id"), nullable=False),
        sa.Column("tag", sa.String(length=40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("entry_tags")
    op.drop_table("entries")
    op.drop_table("accounts")
