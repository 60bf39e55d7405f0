"""An env.py that puts its connection in AUTOCOMMIT mode (privacyIDEA's does: each migration
step commits on its own): the catalog reads, the seeded rows and the safety measurements each
run in a short transaction of their own, and every check finds what it finds otherwise."""

from __future__ import annotations

import dataclasses

import pytest
from migration_projects import CLEAN, Rev, write_project

ENV_AUTOCOMMIT = """
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
engine = engine_from_config(
    config.get_section(config.config_ini_section, {}),
    prefix="sqlalchemy.",
    poolclass=pool.NullPool,
)
with engine.connect() as connection:
    connection = connection.execution_options(isolation_level="AUTOCOMMIT")
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

ADD_CODE = Rev(
    "ac0000000004",
    "d07b4e6c2a15",
    "add code",
    'op.add_column("orders", sa.Column("code", sa.Text(), nullable=False))',
    'op.drop_column("orders", "code")',
)


def run(pytester: pytest.Pytester, dsn: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--schemaguard", f"--schemaguard-dsn={dsn}", "-p", "no:cacheprovider", "-rfs", *args
    )


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2", "asyncpg", "pg8000"])
def test_every_check_finds_its_defects_on_an_autocommit_connection(
    pytester: pytest.Pytester, inner_dsn: str, driver: str
) -> None:
    # the enum the downgrade leaves behind (roundtrip, cycle); a NOT NULL column without a
    # default, which fails on tables with rows (data)
    revisions = list(CLEAN)
    revisions[1] = dataclasses.replace(revisions[1], downgrade='op.drop_column("orders", "status")')
    write_project(pytester.path, [*revisions, ADD_CODE], env=ENV_AUTOCOMMIT)
    result = run(pytester, inner_dsn, "-o", f"schemaguard_driver={driver}", "-W", "default")
    result.assert_outcomes(passed=16, failed=3)
    result.stdout.fnmatch_lines(
        [
            "FAILED alembic.ini::roundtrip[[]8c1e5a2f9b63-add_status[]]*",
            "FAILED alembic.ini::cycle*",
            "FAILED alembic.ini::data[[]ac0000000004-add_code[]]*",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(
        [
            "  downgrade of 8c1e5a2f9b63 (add status) left type public.order_status",
            "upgrade of ac0000000004 (add code) fails on tables with rows: ALTER TABLE orders "
            'ADD COLUMN code TEXT NOT NULL — column "code" of relation "orders" contains null '
            "values (seeded: orders 3 rows); add a server_default or backfill before SET NOT NULL",
        ],
        consecutive=False,
    )
    # the rows were seeded (no note that they could not be), the locks measured
    result.stdout.no_fnmatch_line("*could not be seeded*")
    result.stdout.fnmatch_lines(
        ["*SafetyWarning: revision d07b4e6c2a15 (index status)*holding SHARE*"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_failed_statement_the_revision_catches_leaves_the_next_one_working(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # in autocommit mode a failed statement ends nothing: code that catches it and goes on
    # works with `alembic upgrade`, and so it does while its locks are measured
    tolerant = Rev(
        "ac0000000005",
        "d07b4e6c2a15",
        "tolerant",
        """
        try:
            op.execute("ALTER TABLE no_such_table ADD COLUMN x integer")
        except Exception:
            pass
        op.create_index("ix_orders_total", "orders", ["total"])
        """,
        'op.drop_index("ix_orders_total", table_name="orders")',
    )
    write_project(pytester.path, [*CLEAN, tolerant], env=ENV_AUTOCOMMIT)
    result = run(pytester, inner_dsn, "-k", "ac0000000005", "-W", "default")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*SafetyWarning: revision ac0000000005 (tolerant)*CREATE INDEX ix_orders_total*SHARE*"]
    )
