"""customers and invoices

Revision ID: c3b111ed0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "c3b111ed0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.UniqueConstraint("email", name="uq_customers_email"),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_email", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_email"], ["customers.email"], name="fk_invoices_customer_email"
        ),
    )


def downgrade() -> None:
    op.drop_table("invoices")
    op.drop_table("customers")
