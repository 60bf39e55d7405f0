"""create settings

Revision ID: b2d0c0de0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "b2d0c0de0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    settings = op.create_table(
        "settings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", sa.String(200)),
    )
    op.bulk_insert(settings, [{"id": 1, "name": "theme", "value": "dark"}])


def downgrade():
    op.drop_table("settings")
