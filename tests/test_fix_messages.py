"""Failures that point at the fix: the downgrade() to change and how, what a cycle left behind,
the revision that created a mistyped foreign key (pytester runs, full lines)."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from migration_projects import CLEAN, CUSTOMERS_AND_ORDERS, Rev, run_checks, write_project


def esc(pattern: str) -> str:
    """An fnmatch pattern matching ``[`` and ``]`` literally (node ids have them)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(ch, ch) for ch in pattern)


def with_rev(revisions: list[Rev], index: int, **changes: str) -> list[Rev]:
    out = list(revisions)
    out[index] = dataclasses.replace(out[index], **changes)
    return out


def downgrade_line(path: Path) -> int:
    """The line of ``def downgrade():`` in a revision file, read as text."""
    (line,) = [
        n
        for n, text in enumerate(path.read_text().splitlines(), start=1)
        if text.startswith("def downgrade():")
    ]
    return line


def test_an_enum_left_behind_points_at_downgrade_with_the_fix(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # the type is created with checkfirst=True: upgrading again works, only the comparison
    # of the schemas finds the type the downgrade forgot
    revisions = with_rev(CLEAN, 1, downgrade='op.drop_column("orders", "status")')
    write_project(pytester.path, revisions)
    revision_file = "migrations/versions/0001_8c1e5a2f9b63.py"
    line = downgrade_line(pytester.path / revision_file)
    assert line > 1
    result = run_checks(
        pytester,
        inner_dsn,
        "-k",
        "roundtrip",
        "--junitxml=junit.xml",
        "-o",
        "junit_family=xunit1",
    )
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "roundtrip of 8c1e5a2f9b63 (add status) (migrations/versions/0001_8c1e5a2f9b63.py)",
            "downgrade of 8c1e5a2f9b63 (add status) did not restore the schema before it:",
            "  downgrade of 8c1e5a2f9b63 (add status) left type public.order_status",
            f"  fix: in downgrade() ({revision_file}:{line}), drop the type after the tables "
            'that use it: op.execute("DROP TYPE order_status") or '
            'sa.Enum(name="order_status").drop(op.get_bind())',
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    # the failure's location is the downgrade() (JUnit's file and line; pytest counts from 0)
    cases = {
        case.get("name"): case for case in ET.parse(pytester.path / "junit.xml").iter("testcase")
    }
    failed = cases["roundtrip[8c1e5a2f9b63-add_status]"]
    assert (failed.get("file"), failed.get("line")) == (revision_file, str(line - 1))
    passed = cases["roundtrip[d07b4e6c2a15-index_status]"]
    assert (passed.get("file"), passed.get("line")) == (
        "migrations/versions/0002_d07b4e6c2a15.py",
        "0",
    )


def test_an_index_left_behind_shows_op_drop_index(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = with_rev(CLEAN, 2, downgrade='op.execute("SELECT 1")')
    write_project(pytester.path, revisions)
    revision_file = "migrations/versions/0002_d07b4e6c2a15.py"
    line = downgrade_line(pytester.path / revision_file)
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "downgrade of d07b4e6c2a15 (index status) did not restore the schema before it:",
            "  downgrade of d07b4e6c2a15 (index status) left index public.orders.ix_orders_status",
            f"  fix: in downgrade() ({revision_file}:{line}), drop the index: "
            'op.drop_index("ix_orders_status", table_name="orders")',
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_roundtrip_whose_upgrade_again_fails_still_shows_the_fix(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # without checkfirst, upgrading again fails on the type the downgrade left
    revisions = with_rev(
        CLEAN,
        1,
        upgrade="""
        op.execute("CREATE TYPE order_status AS ENUM ('new', 'paid')")
        op.add_column(
            "orders",
            sa.Column("status", postgresql.ENUM(name="order_status", create_type=False)),
        )
        """,
        downgrade='op.drop_column("orders", "status")',
    )
    write_project(pytester.path, revisions)
    revision_file = "migrations/versions/0001_8c1e5a2f9b63.py"
    line = downgrade_line(pytester.path / revision_file)
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip and 8c1e5a")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "downgrade of 8c1e5a2f9b63 (add status) did not restore the schema before it:",
            "  downgrade of 8c1e5a2f9b63 (add status) left type public.order_status",
            f"  fix: in downgrade() ({revision_file}:{line}), drop the type after the tables "
            'that use it: op.execute("DROP TYPE order_status") or '
            'sa.Enum(name="order_status").drop(op.get_bind())',
            "upgrade after the downgrade of 8c1e5a2f9b63 (add status) failed",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(['    DuplicateObject: type "order_status" already exists'])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_cycle_whose_second_upgrade_fails_names_what_was_left_behind(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = with_rev(
        CLEAN,
        1,
        upgrade="""
        op.execute("CREATE TYPE order_status AS ENUM ('new', 'paid')")
        op.add_column(
            "orders",
            sa.Column("status", postgresql.ENUM(name="order_status", create_type=False)),
        )
        """,
        downgrade='op.drop_column("orders", "status")',
    )
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-k", "cycle")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "cycle base -> head -> base -> head of alembic.ini",
            "downgrading from head did not restore the schema before the first upgrade:",
            "  downgrading every revision from head left type public.order_status",
            "second upgrade of 8c1e5a2f9b63 (add status) failed",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(['    DuplicateObject: type "order_status" already exists'])
    result.stdout.no_fnmatch_line("*Traceback*")


FK_PROJECT = [
    *CUSTOMERS_AND_ORDERS,
    Rev(
        "c3d4e5f6a7b8",
        "b2c3d4e5f6a7",
        "order notes",
        'op.add_column("orders", sa.Column("note", sa.Text))',
        'op.drop_column("orders", "note")',
    ),
]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("-k", "fk_types"), id="fk_types-alone"),
        pytest.param(("-k", "history or upgrade or roundtrip or cycle or fk_types"), id="serial"),
        pytest.param(
            ("-k", "history or upgrade or roundtrip or cycle or fk_types", "-n", "2"), id="xdist"
        ),
    ],
)
def test_fk_types_names_the_revision_that_created_the_foreign_key(
    pytester: pytest.Pytester, inner_dsn: str, args: tuple[str, ...]
) -> None:
    write_project(pytester.path, FK_PROJECT)
    result = run_checks(pytester, inner_dsn, "-rf", *args)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "fk_types: foreign keys of the schema at head have the type of the key they reference",
            "schema: [[]fk-type] foreign key fk_orders_customer: orders.customer_id is integer "
            "but references customers.id, which is bigint: latent overflow once the referenced "
            "key outgrows the column (created by revision b2c3d4e5f6a7 (create orders), "
            "migrations/versions/0001_b2c3d4e5f6a7.py)",
        ],
        consecutive=True,
    )
    # under xdist, pytest before 9 prints the summary line without " - <message>"
    result.stdout.fnmatch_lines(["FAILED alembic.ini::fk_types*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_an_extension_the_server_lacks_says_how_to_get_one_that_has_it(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = with_rev(
        CLEAN, 0, upgrade='op.execute("CREATE EXTENSION IF NOT EXISTS schemaguard_nonesuch")'
    )
    write_project(pytester.path, revisions[:1])
    result = run_checks(pytester, inner_dsn, "-k", "upgrade")
    result.assert_outcomes(failed=1, deselected=result.parseoutcomes()["deselected"])
    result.stdout.fnmatch_lines(
        [
            "error:",
            '    FeatureNotSupported: extension "schemaguard_nonesuch" is not available',
            esc(
                "fix:  this server has no schemaguard_nonesuch extension: add it to extensions "
                'in [tool.schemaguard] (extensions = ["schemaguard_nonesuch"]) so that the '
                "server the plugin starts is one that has it, or install it on this server"
            ),
        ]
    )


PARENT_AND_CHILD = Rev(
    "e1f2a3b4c5d6",
    None,
    "create customers and orders",
    """
    op.create_table("customers", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", name="fk_customer")),
    )
    """,
    # the referenced table first: PostgreSQL refuses while the foreign key is there
    """
    op.drop_table("customers")
    op.drop_table("orders")
    """,
)


def test_a_downgrade_dropping_a_referenced_table_first_says_what_to_drop_before_it(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, [PARENT_AND_CHILD])
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "downgrade of e1f2a3b4c5d6 (create customers and orders) failed",
            "file: migrations/versions/0000_e1f2a3b4c5d6.py",
            '*0000_e1f2a3b4c5d6.py:*: op.drop_table("customers")',
            "SQL:",
            "    DROP TABLE customers",
            "error:",
            "    DependentObjectsStillExist: cannot drop table customers because other objects "
            "depend on it",
            "    DETAIL:  constraint fk_customer on table orders depends on table customers",
            "    HINT:  Use DROP ... CASCADE to drop the dependent objects too.",
            "fix:  drop what depends on table customers before this statement: table orders "
            "(its constraint fk_customer)",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_cycle_downgrade_blocked_by_a_later_revisions_table_says_whose_downgrade(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # orders' revision forgets to drop it: in the cycle, customers' downgrade meets it
    revisions = with_rev(CUSTOMERS_AND_ORDERS, 1, downgrade="pass")
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-k", "cycle")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "downgrade of a1b2c3d4e5f6 (create customers) failed",
            "file: migrations/versions/0000_a1b2c3d4e5f6.py",
            '*0000_a1b2c3d4e5f6.py:*: op.drop_table("customers")',
            "SQL:",
            "    DROP TABLE customers",
            "error:",
            "    DependentObjectsStillExist: cannot drop table customers because other objects "
            "depend on it",
            "    DETAIL:  constraint fk_orders_customer on table orders depends on table customers",
            "    HINT:  Use DROP ... CASCADE to drop the dependent objects too.",
            "fix:  drop what depends on table customers before this statement: table orders "
            "(its constraint fk_orders_customer); what a later revision created, its downgrade() "
            "should have dropped",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_downgrade_recreating_a_constraint_under_another_name_says_how_to_name_it(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = [
        CUSTOMERS_AND_ORDERS[0],
        Rev(
            "f6a7b8c9d0e1",
            "a1b2c3d4e5f6",
            "unique email",
            """
            op.add_column("customers", sa.Column("email", sa.Text))
            op.create_unique_constraint("uq_customers_email", "customers", ["email"])
            op.create_unique_constraint("uq_customers_id_email", "customers", ["id", "email"])
            op.drop_constraint("uq_customers_id_email", "customers", type_="unique")
            """,
            'op.drop_constraint("uq_customers_email", "customers", type_="unique")',
        ),
        Rev(
            "0a1b2c3d4e5f",
            "f6a7b8c9d0e1",
            "email key",
            """
            op.drop_constraint("uq_customers_email", "customers", type_="unique")
            op.create_unique_constraint("customers_email_key", "customers", ["email"])
            """,
            # recreated under a name of its own choosing
            """
            op.drop_constraint("customers_email_key", "customers", type_="unique")
            op.create_unique_constraint("uq_email", "customers", ["email"])
            """,
        ),
    ]
    revisions[1] = dataclasses.replace(
        revisions[1],
        downgrade="""
        op.drop_constraint("uq_customers_email", "customers", type_="unique")
        op.drop_column("customers", "email")
        """,
    )
    write_project(pytester.path, revisions)
    revision_file = "migrations/versions/0002_0a1b2c3d4e5f.py"
    line = downgrade_line(pytester.path / revision_file)
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip and 0a1b2c")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "downgrade of 0a1b2c3d4e5f (email key) did not restore the schema before it:",
            "  downgrade of 0a1b2c3d4e5f (email key) changed constraint "
            "public.customers.uq_customers_email: name uq_customers_email → uq_email (same "
            "definition)",
            f"  fix: in downgrade() ({revision_file}:{line}), create it under its name from "
            'before the upgrade, uq_customers_email (or rename it: op.execute("ALTER TABLE '
            'customers RENAME CONSTRAINT uq_email TO uq_customers_email"))',
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_first_revision_needing_a_table_from_before_alembic_points_at_bootstrap(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # the project's life began with create_all: its first revision alters a table no
    # revision creates
    first = Rev(
        "c0ffee000001",
        None,
        "add step",
        'op.add_column("metrics", sa.Column("step", sa.BigInteger, server_default="0"))',
        'op.drop_column("metrics", "step")',
    )
    write_project(pytester.path, [first])
    result = run_checks(pytester, inner_dsn, "-k", "upgrade")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "error:",
            '    UndefinedTable: relation "metrics" does not exist',
            "fix:  c0ffee000001 (add step) comes first, yet it needs table metrics: when the "
            "schema begins before Alembic (tables made by create_all, then `alembic stamp`), "
            'give a hook that builds them: bootstrap = "package.module:function" in '
            "[[]tool.schemaguard], called with a SQLAlchemy connection (see "
            "docs/checks/migrations.md)",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")

    # with a hook that builds the table, the revision upgrades; with one that does not, the
    # error has no such line (the hook is there: it is the hook that is wrong)
    (pytester.path / "hooks.py").write_text(
        "import sqlalchemy as sa\n\n\n"
        "def build(connection):\n"
        '    connection.execute(sa.text("CREATE TABLE metrics (key text)"))\n\n\n'
        "def nothing(connection):\n"
        "    pass\n"
    )
    write_project(pytester.path, [first], settings='bootstrap = "hooks:build"\n')
    run_checks(pytester, inner_dsn, "-k", "upgrade").assert_outcomes(passed=1)
    write_project(pytester.path, [first], settings='bootstrap = "hooks:nothing"\n')
    result = run_checks(pytester, inner_dsn, "-k", "upgrade")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['    UndefinedTable: relation "metrics" does not exist'])
    result.stdout.no_fnmatch_line("fix:*")


def test_a_revision_after_an_empty_base_revision_needing_a_table_points_at_bootstrap(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # JupyterHub's layout: an empty "base revision" marks where the project adopted Alembic
    # (its tables came from create_all); the next revision alters one of them
    base = Rev("c0ffee0000c1", None, "base revision for 0.5", "pass", "pass")
    later = Rev(
        "c0ffee0000c2",
        "c0ffee0000c1",
        "add step",
        'op.add_column("metrics", sa.Column("step", sa.BigInteger))',
        'op.drop_column("metrics", "step")',
    )
    write_project(pytester.path, [base, later])
    result = run_checks(pytester, inner_dsn, "-k", "upgrade")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            '    UndefinedTable: relation "metrics" does not exist',
            "fix:  c0ffee0000c2 (add step) is the first revision that changes the schema (the "
            "upgrade() of c0ffee0000c1 (base revision for 0.5) does nothing), yet it needs "
            "table metrics: when the schema begins before Alembic (tables made by create_all, "
            "then `alembic stamp`), give a hook that builds them: bootstrap = "
            '"package.module:function" in [[]tool.schemaguard], called with a SQLAlchemy '
            "connection (see docs/checks/migrations.md)",
        ],
        consecutive=True,
    )


def test_a_later_revision_needing_a_missing_table_gets_no_bootstrap_hint(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    later = Rev(
        "c0ffee000002",
        "3f2a9c1b7d40",
        "add step",
        'op.add_column("metrics", sa.Column("step", sa.BigInteger))',
        'op.drop_column("metrics", "step")',
    )
    write_project(pytester.path, [CLEAN[0], later])
    result = run_checks(pytester, inner_dsn, "-k", "upgrade")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(['    UndefinedTable: relation "metrics" does not exist'])
    result.stdout.no_fnmatch_line("fix:*")


def test_an_index_recreated_otherwise_and_an_enum_value_left_say_how_to_restore_them(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = [
        *CLEAN,
        Rev(
            "e5e5e5e5e5e5",
            "d07b4e6c2a15",
            "unique total",
            'op.create_index("ix_orders_total", "orders", ["total"], unique=True)',
            'op.drop_index("ix_orders_total", table_name="orders")',
        ),
        Rev(
            "f6f6f6f6f6f6",
            "e5e5e5e5e5e5",
            "widen total index",
            """
            op.drop_index("ix_orders_total", table_name="orders")
            op.create_index("ix_orders_total", "orders", ["total", "id"], unique=True)
            """,
            # recreated without unique=True
            """
            op.drop_index("ix_orders_total", table_name="orders")
            op.create_index("ix_orders_total", "orders", ["total"])
            """,
        ),
        Rev(
            "a7a7a7a7a7a7",
            "f6f6f6f6f6f6",
            "refunded status",
            "op.execute(\"ALTER TYPE order_status ADD VALUE 'refunded'\")",
            "pass",
        ),
    ]
    write_project(pytester.path, revisions)
    index_file = "migrations/versions/0004_f6f6f6f6f6f6.py"
    enum_file = "migrations/versions/0005_a7a7a7a7a7a7.py"
    index_line = downgrade_line(pytester.path / index_file)
    enum_line = downgrade_line(pytester.path / enum_file)
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip and (f6f6f6 or a7a7a7)")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "downgrade of f6f6f6f6f6f6 (widen total index) did not restore the schema before it:",
            "  downgrade of f6f6f6f6f6f6 (widen total index) changed index "
            "public.orders.ix_orders_total: unique true → false",
            f"  fix: in downgrade() ({index_file}:{index_line}), recreate the index as it was "
            'before the upgrade: op.drop_index("ix_orders_total", table_name="orders"), then '
            'op.execute("CREATE UNIQUE INDEX ix_orders_total ON public.orders USING btree '
            '(total)")',
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "downgrade of a7a7a7a7a7a7 (refunded status) did not restore the schema before it:",
            "  downgrade of a7a7a7a7a7a7 (refunded status) changed type public.order_status: "
            "labels new, paid → new, paid, refunded (added refunded)",
            f"  fix: in downgrade() ({enum_file}:{enum_line}), PostgreSQL cannot drop a value "
            "from an enum (refunded): rename the type, create order_status again with the values "
            "it had before the upgrade, alter each column that uses it to the new type (USING "
            "<column>::text::order_status), then drop the renamed type; or list the revision in "
            "irreversible",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_downgrade_that_raises_on_purpose_points_at_irreversible(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = with_rev(CLEAN, 2, downgrade='raise NotImplementedError("no way back")')
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "downgrade of d07b4e6c2a15 (index status) failed",
            "file: migrations/versions/0002_d07b4e6c2a15.py",
            '*0002_d07b4e6c2a15.py:*: raise NotImplementedError("no way back")',
            "error:",
            "    NotImplementedError: no way back",
            "fix:  if the revision is not meant to be downgraded, list it in irreversible "
            '(irreversible = [[]"d07b4e6c2a15"] in [[]tool.schemaguard]): its upgrade is still '
            "checked, and no check downgrades it",
        ],
        consecutive=True,
    )
    # listed there, the project passes: no round trip, and the cycle stops above it
    write_project(pytester.path, revisions, settings='irreversible = ["d07b4e6c2a15"]\n')
    result = run_checks(pytester, inner_dsn)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.no_fnmatch_line("*roundtrip[[]d07b4e6c2a15*")


def test_a_type_of_an_extension_no_revision_creates_says_where_to_create_it(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # the project expects hstore created on its database beforehand (by a DBA, by hand)
    first = Rev(
        "c0ffee0000a1",
        None,
        "create settings",
        'op.create_table("settings", sa.Column("id", sa.Integer, primary_key=True), '
        'sa.Column("attrs", postgresql.HSTORE))',
        'op.drop_table("settings")',
    )
    write_project(pytester.path, [first])
    result = run_checks(pytester, inner_dsn, "-k", "upgrade")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "error:",
            '    UndefinedObject: type "hstore" does not exist',
            "*",
            "*",
            "fix:  hstore comes from the hstore extension, which the database does not have "
            "here: when the project expects it created beforehand (not by a revision), create "
            "it in a bootstrap hook, run on the empty database before the first revision "
            '(bootstrap = "package.module:function" in [[]tool.schemaguard], calling '
            "conn.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS \"hstore\"')), or in the "
            'first revision; extensions = [[]"hstore"] makes the server the plugin starts one '
            "that has it",
        ],
        consecutive=True,
    )
    # as the line says: created by a bootstrap hook, every check of the revision passes
    (pytester.path / "hooks.py").write_text(
        "def extensions(conn):\n"
        "    conn.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS \"hstore\"')\n"
    )
    write_project(pytester.path, [first], settings='bootstrap = "hooks:extensions"\n')
    run_checks(pytester, inner_dsn, "-k", "upgrade or roundtrip or cycle").assert_outcomes(passed=3)


def test_a_revision_dropping_mysqls_primary_name_says_postgresqls(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # written against MySQL, whose primary keys are all named PRIMARY (octavia's 9bf4d21caaea)
    first = Rev(
        "c0ffee0000b1",
        None,
        "create stats",
        'op.create_table("stats", sa.Column("listener_id", sa.String(36), primary_key=True))',
        'op.drop_table("stats")',
    )
    second = Rev(
        "c0ffee0000b2",
        "c0ffee0000b1",
        "widen the key",
        """
        op.add_column("stats", sa.Column("amphora_id", sa.String(36), nullable=False))
        op.drop_constraint("PRIMARY", "stats", type_="primary")
        op.create_primary_key("pk_stats", "stats", ["listener_id", "amphora_id"])
        """,
        """
        op.drop_constraint("pk_stats", "stats", type_="primary")
        op.drop_column("stats", "amphora_id")
        op.create_primary_key("stats_pkey", "stats", ["listener_id"])
        """,
    )
    write_project(pytester.path, [first, second])
    result = run_checks(pytester, inner_dsn, "-k", "upgrade")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "SQL:",
            '    ALTER TABLE stats DROP CONSTRAINT "PRIMARY"',
            "error:",
            '    UndefinedObject: constraint "PRIMARY" of relation "stats" does not exist',
            "fix:  PRIMARY is MySQL's name for a table's primary key; PostgreSQL names it "
            "stats_pkey unless it was given a name: use that name, or the one "
            'sa.inspect(op.get_bind()).get_pk_constraint("stats")[[]"name"[]] gives, where the '
            "revision drops or alters it",
        ],
        consecutive=True,
    )


# `alembic upgrade head` on an empty database fails where each revision upgraded on its own
# works: the first revision's Enum makes SQLAlchemy remember, for the rest of the run, that it
# created the type; the second drops it with plain SQL; the third creates a table with the same
# Enum, whose CREATE TYPE SQLAlchemy then skips.
TYPE_DROPPED_BY_SQL = [
    Rev(
        "6b2e00000001",
        None,
        "create jobs",
        """
        op.create_table(
            "jobs",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("kind", sa.Enum("A", "B", name="kind"), nullable=False),
        )
        """,
        """
        op.drop_table("jobs")
        op.execute("DROP TYPE kind")
        """,
    ),
    Rev(
        "6b2e00000002",
        "6b2e00000001",
        "drop jobs",
        """
        op.drop_table("jobs")
        op.execute("DROP TYPE kind")
        """,
        """
        op.execute("CREATE TYPE kind AS ENUM ('A', 'B')")
        op.create_table(
            "jobs",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("kind", postgresql.ENUM(name="kind", create_type=False), nullable=False),
        )
        """,
    ),
    Rev(
        "6b2e00000003",
        "6b2e00000002",
        "create tasks",
        """
        op.create_table(
            "tasks",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("kind", sa.Enum("A", "B", name="kind"), nullable=False),
        )
        """,
        """
        op.drop_table("tasks")
        op.execute("DROP TYPE kind")
        """,
    ),
]


def test_a_cycle_failing_only_as_one_run_from_base_says_so_and_how_to_fix_it(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, TYPE_DROPPED_BY_SQL)
    result = run_checks(pytester, inner_dsn, "-k", "upgrade or roundtrip or cycle")
    # every revision upgrades and round-trips on its own; only the cycle's one run fails
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ cycle _*",
            "cycle base -> head -> base -> head of alembic.ini",
            "second upgrade of 6b2e00000003 (create tasks) failed",
            "its first upgrade (from its parent, in a run of its own) passed; this one is part "
            "of one run from base to head, as `alembic upgrade head` on an empty database runs "
            "it: that fails at this revision",
            "file: migrations/versions/0002_6b2e00000003.py",
            "at:   0002_6b2e00000003.py:*: op.create_table(",
            "SQL:",
            "    CREATE TABLE tasks (",
            "*",
            "*kind kind NOT NULL,*",
            "*",
            "    )",
            "error:",
            '    UndefinedObject: type "kind" does not exist',
            "*",
            "*",
            "fix:  type kind was created earlier in this run by SQLAlchemy, which then skips its "
            "CREATE TYPE for the rest of the run, and it is gone now (dropped by SQL that "
            'SQLAlchemy does not track, such as op.execute("DROP TYPE kind")): create it in '
            'this revision whatever ran before, postgresql.ENUM(..., name="kind").create('
            "op.get_bind(), checkfirst=True), and use it without creating it, postgresql.ENUM("
            'name="kind", create_type=False) (upgraded on its own, the revision works; '
            "`alembic upgrade head` on an empty database fails here)",
        ],
        consecutive=True,
    )
    # as the line says: the type created with checkfirst, the cycle passes too
    fixed = dataclasses.replace(
        TYPE_DROPPED_BY_SQL[2],
        upgrade="""
        postgresql.ENUM("A", "B", name="kind").create(op.get_bind(), checkfirst=True)
        op.create_table(
            "tasks",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("kind", postgresql.ENUM(name="kind", create_type=False), nullable=False),
        )
        """,
    )
    write_project(pytester.path, [*TYPE_DROPPED_BY_SQL[:2], fixed])
    result = run_checks(pytester, inner_dsn, "-k", "upgrade or roundtrip or cycle")
    result.assert_outcomes(passed=7)


def test_a_type_missing_in_one_run_that_sqlalchemy_never_created_gets_no_memo_fix(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # the cycle's second upgrade fails on a type no Enum of the run created: the first
    # revision creates it in a DO block unless its marker table exists, and its downgrade
    # leaves that table, so the cycle's upgrade skips the type; SQLAlchemy's memo is not why
    first = Rev(
        "6b2e000000a1",
        None,
        "maybe create kind",
        """
        op.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'marker') "
            "THEN CREATE TYPE kind AS ENUM ('A'); CREATE TABLE marker (id int); END IF; END $$"
        )
        """,
        'op.execute("DROP TYPE IF EXISTS kind")',
    )
    second = Rev(
        "6b2e000000a2",
        "6b2e000000a1",
        "use kind",
        'op.create_table("t", sa.Column("k", postgresql.ENUM(name="kind", create_type=False)))',
        'op.drop_table("t")',
    )
    write_project(pytester.path, [first, second])
    result = run_checks(pytester, inner_dsn, "-k", "cycle")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['    UndefinedObject: type "kind" does not exist'])
    result.stdout.no_fnmatch_line("*was created earlier in this run by SQLAlchemy*")
