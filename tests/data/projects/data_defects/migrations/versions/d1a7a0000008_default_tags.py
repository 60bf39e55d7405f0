"""default tags

Revision ID: d1a7a0000008
Revises: d1a7a0000007
"""

from alembic import op

revision = "d1a7a0000008"
down_revision = "d1a7a0000007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("INSERT INTO tags (id, label) VALUES (1001, 'urgent'), (1002, 'gift')")


def downgrade() -> None:
    # clean: it deletes only the rows its upgrade added
    op.execute("DELETE FROM tags WHERE id IN (1001, 1002)")
