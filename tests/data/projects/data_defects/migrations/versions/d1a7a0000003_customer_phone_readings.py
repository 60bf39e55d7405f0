"""customer phone readings

Revision ID: d1a7a0000003
Revises: d1a7a0000002
"""

import sqlalchemy as sa
from alembic import op

revision = "d1a7a0000003"
down_revision = "d1a7a0000002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("phone", sa.String(20)))
    # no value of a composite type is generated: the table is named in a note, not failed
    op.execute("CREATE TYPE gauge AS (low real, high real)")
    op.execute("CREATE TABLE readings (id integer PRIMARY KEY, gauge gauge NOT NULL)")


def downgrade() -> None:
    op.drop_table("readings")
    op.execute("DROP TYPE gauge")
    op.drop_column("customers", "phone")
