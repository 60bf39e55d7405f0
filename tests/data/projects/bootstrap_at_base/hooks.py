"""The tables the shop created with create_all before it adopted Alembic."""

import sqlalchemy as sa

legacy = sa.MetaData()

sa.Table(
    "customers",
    legacy,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
)
sa.Table(
    "products",
    legacy,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False, unique=True),
)


def create_legacy_tables(connection):
    legacy.create_all(connection)
