"""tag color

Revision ID: d1a7a0000006
Revises: d1a7a0000005
"""

import sqlalchemy as sa
from alembic import op

revision = "d1a7a0000006"
down_revision = "d1a7a0000005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tags", sa.Column("color", sa.Text()))


def downgrade() -> None:
    # the defect: the table is dropped and made again, so its rows are gone (the schema
    # matches, so the round trip passes)
    op.drop_table("tags")
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("label", sa.Text(), nullable=False, unique=True),
    )
