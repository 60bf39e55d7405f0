"""Small Alembic projects written into a pytester directory, for the migration-check tests."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV_CONNECTION = """
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
PER_MIGRATION = {per_migration}


def run(connection):
    context.configure(connection=connection, transaction_per_migration=PER_MIGRATION)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {{}}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        run(connection)
"""

ENV_URL_ONLY = """
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
"""

ENV_VARIABLE = """
import os

from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine(os.environ["APP_DATABASE_URL"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

ENV_ASYNC = """
import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config


def do_run_migrations(connection):
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def main():
    engine = create_async_engine(config.attributes["async_url"], poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


asyncio.run(main())
"""


@dataclass
class Rev:
    """One revision file: id, parent(s), message, and the bodies of upgrade()/downgrade()."""

    revision: str
    down: str | tuple[str, ...] | None
    message: str
    upgrade: str
    downgrade: str
    module: str = ""
    """Module-level code after the imports (state shared by the upgrade() calls)."""

    def source(self) -> str:
        def body(code: str) -> str:
            return textwrap.indent(textwrap.dedent(code).strip() or "pass", "    ")

        return (
            f'"""{self.message}"""\n\n'
            "import sqlalchemy as sa\n"
            "from alembic import op\n"
            "from sqlalchemy.dialects import postgresql\n\n"
            + (textwrap.dedent(self.module).strip() + "\n\n" if self.module else "")
            + f"revision = {self.revision!r}\n"
            f"down_revision = {self.down!r}\n"
            "branch_labels = None\n"
            "depends_on = None\n\n\n"
            f"def upgrade():\n{body(self.upgrade)}\n\n\n"
            f"def downgrade():\n{body(self.downgrade)}\n"
        )


def write_project(
    root: Path,
    revisions: list[Rev],
    *,
    settings: str = "",
    env: str | None = None,
    conftest: str = "",
) -> Path:
    """An Alembic project in ``root``: alembic.ini, migrations/env.py, versions, pyproject."""
    (root / "migrations" / "versions").mkdir(parents=True, exist_ok=True)
    (root / "alembic.ini").write_text(
        "[alembic]\n"
        "script_location = migrations\n"
        "prepend_sys_path = .\n"
        "path_separator = os\n"
        "sqlalchemy.url = postgresql+psycopg://nobody@127.0.0.1:1/nowhere\n"
    )
    (root / "migrations" / "env.py").write_text(
        env if env is not None else ENV_CONNECTION.format(per_migration=False)
    )
    for i, rev in enumerate(revisions):
        (root / "migrations" / "versions" / f"{i:04d}_{rev.revision}.py").write_text(rev.source())
    (root / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n"
        'pythonpath = ["."]\n\n'
        "[tool.schemaguard]\n"
        'alembic_config = "alembic.ini"\n' + textwrap.dedent(settings)
    )
    if conftest:
        (root / "conftest.py").write_text(textwrap.dedent(conftest))
    return root


MIGRATION_ITEMS = "history or upgrade or roundtrip or cycle"


def run_checks(pytester: pytest.Pytester, dsn: str | None, *args: str) -> pytest.RunResult:
    """``pytest --schemaguard`` in the pytester directory, on the outer session's server
    (``dsn``; None lets the inner run start the server its settings ask for).

    Only the migration items run (other checks have their own tests) unless ``-k`` is given.
    """
    select = () if "-k" in args else ("-k", MIGRATION_ITEMS)
    server = (f"--schemaguard-dsn={dsn}",) if dsn else ()
    return pytester.runpytest_subprocess(
        "--schemaguard",
        *server,
        "-p",
        "no:cacheprovider",
        "-rs",
        *select,
        *args,
    )


# A clean three-revision history: a table, an enum column, an index.
CLEAN = [
    Rev(
        "3f2a9c1b7d40",
        None,
        "create orders",
        """
        op.create_table(
            "orders",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("total", sa.Numeric(10, 2), nullable=False, server_default="0"),
        )
        """,
        'op.drop_table("orders")',
    ),
    Rev(
        "8c1e5a2f9b63",
        "3f2a9c1b7d40",
        "add status",
        """
        status = postgresql.ENUM("new", "paid", name="order_status")
        status.create(op.get_bind(), checkfirst=True)
        op.add_column(
            "orders",
            sa.Column(
                "status",
                postgresql.ENUM(name="order_status", create_type=False),
                nullable=False,
                server_default="new",
            ),
        )
        """,
        """
        op.drop_column("orders", "status")
        postgresql.ENUM(name="order_status").drop(op.get_bind())
        """,
    ),
    Rev(
        "d07b4e6c2a15",
        "8c1e5a2f9b63",
        "index status",
        'op.create_index("ix_orders_status", "orders", ["status"])',
        'op.drop_index("ix_orders_status", table_name="orders")',
    ),
]


#: Two revisions: ``customers`` (bigint key), then ``orders`` with an integer ``customer_id``
#: and the foreign key ``fk_orders_customer`` to it (a mistyped foreign key for ``fk_types``).
CUSTOMERS_AND_ORDERS = [
    Rev(
        "a1b2c3d4e5f6",
        None,
        "create customers",
        'op.create_table("customers", sa.Column("id", sa.BigInteger, primary_key=True))',
        'op.drop_table("customers")',
    ),
    Rev(
        "b2c3d4e5f6a7",
        "a1b2c3d4e5f6",
        "create orders",
        """
        op.create_table(
            "orders",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("customer_id", sa.Integer, nullable=False),
            sa.ForeignKeyConstraint(
                ["customer_id"], ["customers.id"], name="fk_orders_customer"
            ),
        )
        """,
        'op.drop_table("orders")',
    ),
]
