"""settings flag

Revision ID: b2d0c0de0002
Revises: b2d0c0de0001
"""

import sqlalchemy as sa
from alembic import op

revision = "b2d0c0de0002"
down_revision = "b2d0c0de0001"
branch_labels = None
depends_on = None

settings = sa.table("settings", sa.column("flag", sa.String), sa.column("enabled", sa.String))


def upgrade():
    op.add_column("settings", sa.Column("flag", sa.String(1)))
    op.add_column("settings", sa.Column("enabled", sa.Boolean))
    # psycopg2 sends literal() values as untyped literals, which PostgreSQL assigns to a column
    # of any type (enabled is a boolean); psycopg 3 sends them as VARCHAR
    op.execute(settings.update().values(flag=sa.literal("0"), enabled=sa.literal("0")))
    op.alter_column("settings", "flag", nullable=False)
    # SQL for the driver itself: psycopg2 reads "%%" as "%"
    qualified = op.get_bind().exec_driver_sql("SELECT format('%%I.%%I', 'public', 'settings')")
    op.execute(f"COMMENT ON TABLE {qualified.scalar()} IS 'application settings'")
    op.create_index("ix_settings_name", "settings", ["name"])


def downgrade():
    op.drop_index("ix_settings_name", table_name="settings")
    op.execute("COMMENT ON TABLE settings IS NULL")
    op.drop_column("settings", "enabled")
    op.drop_column("settings", "flag")
