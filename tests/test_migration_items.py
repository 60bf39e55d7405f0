"""The migration checks as pytest items: ids, selection, outcomes and failure output."""

from __future__ import annotations

import dataclasses
import os
import shutil
import textwrap
from pathlib import Path

import pytest
from defects import DEFECTS, apply_defect, copy_project
from migration_projects import (
    CLEAN,
    ENV_CONNECTION,
    MIGRATION_ITEMS,
    Rev,
    run_checks,
    write_project,
)

from pytest_schemaguard.migrations.alembic_driver import find_alembic_config
from pytest_schemaguard.server import PostgresServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TOOL_ALEMBIC = '[tool.alembic]\nscript_location = "%(here)s/migrations"\n\n'

ALL_CLEAN_IDS = [
    "alembic.ini::history",
    "alembic.ini::upgrade[3f2a9c1b7d40-create_orders]",
    "alembic.ini::roundtrip[3f2a9c1b7d40-create_orders]",
    "alembic.ini::upgrade[8c1e5a2f9b63-add_status]",
    "alembic.ini::roundtrip[8c1e5a2f9b63-add_status]",
    "alembic.ini::upgrade[d07b4e6c2a15-index_status]",
    "alembic.ini::roundtrip[d07b4e6c2a15-index_status]",
    "alembic.ini::cycle",
]

# The report header of the CLEAN project on the suite's server.
HEADER_LINES = [
    "schemaguard: PostgreSQL *, external server postgresql://*",
    "schemaguard: migrations alembic.ini: 3 revisions, head d07b4e6c2a15-index_status",
]


def esc(pattern: str) -> str:
    """An fnmatch pattern matching ``[`` and ``]`` literally (node ids have them)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(ch, ch) for ch in pattern)


def with_rev(revisions: list[Rev], index: int, **changes: str) -> list[Rev]:
    out = list(revisions)
    out[index] = dataclasses.replace(out[index], **changes)
    return out


def test_clean_project_passes_every_item_with_stable_ids(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, CLEAN)
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=8)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([esc(f"{node} PASSED*") for node in ALL_CLEAN_IDS])
    result.stdout.no_fnmatch_line("*Traceback*")
    # the report header names the server and the migrations' head (no baseline configured; see
    # test_the_report_header_names_the_migrations_head_and_baseline for one)
    result.stdout.fnmatch_lines(HEADER_LINES)


def test_items_are_selectable_by_keyword_marker_and_node_id(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, CLEAN)
    result = run_checks(pytester, inner_dsn, "-v", "-k", "roundtrip and 8c1e5a")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([esc("alembic.ini::roundtrip[8c1e5a2f9b63-add_status] PASSED*")])

    result = run_checks(pytester, inner_dsn, "-m", "not schemaguard")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED

    result = run_checks(
        pytester, inner_dsn, "-v", "-m", "schemaguard", "--deselect", "alembic.ini::cycle"
    )
    result.assert_outcomes(passed=7)


def test_a_downgrade_forgetting_a_checkfirst_enum_is_caught_by_roundtrip(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # upgrade creates the type with checkfirst=True, so upgrading again does not fail:
    # only comparing the schemas shows the type left behind.
    revisions = with_rev(CLEAN, 1, downgrade='op.drop_column("orders", "status")')
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=6, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            esc("*roundtrip[8c1e5a2f9b63-add_status] FAILED*"),
            "*cycle FAILED*",
            "roundtrip of 8c1e5a2f9b63 (add status) (migrations/versions/0001_8c1e5a2f9b63.py)",
            "downgrade of 8c1e5a2f9b63 (add status) did not restore the schema before it:",
            "  downgrade of 8c1e5a2f9b63 (add status) left type public.order_status",
            "*downgrading every revision from head left type public.order_status",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_failing_upgrade_names_the_file_the_sql_and_the_server_error(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = with_rev(
        CLEAN,
        1,
        upgrade='op.execute("ALTER TABLE orders ADD COLUMN status order_status_typo")',
    )
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=3, failed=1, skipped=4)
    result.stdout.fnmatch_lines(
        [
            esc("*upgrade[8c1e5a2f9b63-add_status] FAILED*"),
            esc("*roundtrip[8c1e5a2f9b63-add_status] SKIPPED*"),
            "upgrade of 8c1e5a2f9b63 (add status) (migrations/versions/0001_8c1e5a2f9b63.py)",
            "upgrade of 8c1e5a2f9b63 (add status) failed",
            "file: migrations/versions/0001_8c1e5a2f9b63.py",
            "at:   0001_8c1e5a2f9b63.py:*: op.execute(*",
            "SQL:",
            "    ALTER TABLE orders ADD COLUMN status order_status_typo",
            "error:",
            '    UndefinedObject: type "order_status_typo" does not exist',
        ]
    )
    # the items that need the failed revision are skipped with one reason, not a cascade
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] migrations/versions/0001_8c1e5a2f9b63.py:1: "
            "needs 8c1e5a2f9b63-add_status, whose upgrade failed",
            "SKIPPED [[]2[]] migrations/versions/0002_d07b4e6c2a15.py:1: "
            "needs 8c1e5a2f9b63-add_status, whose upgrade failed",
            "SKIPPED [[]1[]] alembic.ini:1: needs 8c1e5a2f9b63-add_status, whose upgrade failed",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_lone_roundtrip_whose_upgrade_fails_fails_instead_of_skipping(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = with_rev(CLEAN, 0, upgrade='op.execute("CREATE TABLE orders (id serial, id int)")')
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip and d07b4e6c2a15")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "upgrade of 3f2a9c1b7d40 (create orders) (needed first) failed",
            '*DuplicateColumn: column "id" specified more than once*',
        ]
    )


def test_a_failing_downgrade_fails_its_roundtrip_and_the_next_revisions_still_run(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = with_rev(CLEAN, 1, downgrade='op.drop_column("orders", "state")')
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-v")
    # the cycle meets the very same error going down: one root cause, one failure
    result.assert_outcomes(passed=6, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            esc("*roundtrip[8c1e5a2f9b63-add_status] FAILED*"),
            esc("*roundtrip[d07b4e6c2a15-index_status] PASSED*"),
            esc("*cycle SKIPPED (blocked: roundtrip[8c1e5a2f9b63-add_stat*"),
            "downgrade of 8c1e5a2f9b63 (add status) failed",
            "SQL:",
            "    ALTER TABLE orders DROP COLUMN state",
            '    UndefinedColumn: column "state" of relation "orders" does not exist',
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [1] alembic.ini:1: blocked: roundtrip[8c1e5a2f9b63-add_status] failed "
            "(downgrade 8c1e5a2f9b63 migrations/versions/0001_8c1e5a2f9b63.py: UndefinedColumn: "
            'column "state" of relation "orders" does not exist)'
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    # selected alone, the cycle reports the error in full
    alone = run_checks(pytester, inner_dsn, "-k", "cycle")
    alone.assert_outcomes(failed=1)
    alone.stdout.fnmatch_lines(
        [
            "cycle base -> head -> base -> head of alembic.ini",
            "downgrade of 8c1e5a2f9b63 (add status) failed",
        ]
    )


def test_a_downgrade_dropping_too_much_is_named(pytester: pytest.Pytester, inner_dsn: str) -> None:
    revisions = with_rev(
        CLEAN,
        2,
        downgrade="""
        op.drop_index("ix_orders_status", table_name="orders")
        op.execute("ALTER TABLE orders ALTER COLUMN total DROP DEFAULT")
        """,
    )
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip and not fk")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "downgrade of d07b4e6c2a15 (index status) did not restore the schema before it:",
            "  downgrade of d07b4e6c2a15 (index status) changed column public.orders.total: "
            "default '0'::numeric → (none)",
        ]
    )


COLUMN_ORDER = [
    CLEAN[0],
    Rev(
        "5e9d0c3b8a71",
        "3f2a9c1b7d40",
        "drop total",
        'op.drop_column("orders", "total")',
        'op.add_column("orders", sa.Column("total", sa.Numeric(10, 2), nullable=False, '
        'server_default="0"))',
    ),
]


@pytest.mark.parametrize("mode", ["warn", "fail", "ignore"])
def test_column_order_only_differences_follow_the_setting(
    pytester: pytest.Pytester, inner_dsn: str, mode: str
) -> None:
    # dropping `total` and adding it back puts it last: a column-order-only difference
    COLUMN_ORDER[0] = dataclasses.replace(
        CLEAN[0],
        upgrade="""
        op.create_table(
            "orders",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("total", sa.Numeric(10, 2), nullable=False, server_default="0"),
            sa.Column("note", sa.Text),
        )
        """,
    )
    write_project(pytester.path, COLUMN_ORDER, settings=f'column_order = "{mode}"\n')
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip and 5e9d0c")
    if mode == "fail":
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            ["  downgrade of 5e9d0c3b8a71 (drop total) changed table public.orders: *"]
        )
    else:
        result.assert_outcomes(passed=1, warnings=1 if mode == "warn" else 0)
    if mode == "warn":
        result.stdout.fnmatch_lines(
            [
                "*warnings summary*",
                "*ColumnOrderWarning: roundtrip of 5e9d0c3b8a71 (drop total)*"
                "downgrade of 5e9d0c3b8a71 (drop total) changed table public.orders*",
            ]
        )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_env_py_connecting_elsewhere_is_stopped_before_migrating(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # an env.py that ignores everything it is given and connects to the maintenance database
    env = f"""
from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine({inner_dsn.replace("postgresql://", "postgresql+psycopg://")!r},
                       poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""
    write_project(pytester.path, CLEAN, env=env)
    result = run_checks(pytester, inner_dsn, "-k", "upgrade and 3f2a9c")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "    env.py connected to database 'postgres', not to the scratch database it was "
            "given; nothing was migrated",
            "    it was given database 'schemaguard_*' (postgresql+psycopg://*): make env.py use "
            "config.attributes[[]'connection'], the sqlalchemy.url option, or override the "
            "schemaguard_alembic_config fixture",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_env_py_falling_back_to_sqlite_fails_one_check_and_blocks_every_other(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # an application that also runs on SQLite, whose own setting was not pointed at the
    # scratch database: every check family (migrations, fk_types, safety, data) meets it
    env = """
from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine("sqlite:///app.db", poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""
    write_project(pytester.path, CLEAN, env=env)
    result = run_checks(pytester, inner_dsn, "-k", "", "-rs")
    outcomes = result.parseoutcomes()
    assert (outcomes.get("failed"), outcomes.get("passed")) == (1, 1), outcomes
    cause = (
        "env.py connected to a sqlite database (sqlite:///app.db), not to the scratch database "
        "it was given; nothing was migrated"
    )
    result.stdout.fnmatch_lines(["error:", f"    {cause}"], consecutive=True)
    skipped = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert len(skipped) >= 4, skipped  # upgrade/roundtrip, cycle and fk_types, safety, data
    blocked = f"blocked: upgrade[3f2a9c1b7d40-create_orders] failed (migrations/env.py: {cause})"
    for line in skipped:
        assert blocked in line, line
    result.stdout.no_fnmatch_line("*Traceback*")


def test_env_py_that_never_runs_the_migrations_fails_one_item_and_blocks_the_rest(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # an env.py that only knows offline mode: `alembic upgrade head` would do nothing either
    env = """
from alembic import context

if context.is_offline_mode():
    context.configure(url="postgresql://", literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
"""
    write_project(pytester.path, CLEAN, env=env)
    result = run_checks(pytester, inner_dsn, "-k", "", "-rs")
    # history needs no database; every other check is blocked by the first migration item
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, outcomes
    assert outcomes.get("passed") == 1, outcomes
    result.stdout.fnmatch_lines(
        [
            "*_ upgrade[[]3f2a9c1b7d40-create_orders[]] _*",
            "upgrade of 3f2a9c1b7d40 (create orders) (migrations/versions/0000_3f2a9c1b7d40.py)",
            "env.py failed before the first migration step:",
            "file: migrations/env.py",
            "error:",
            "    env.py returned without calling context.run_migrations(): no revision ran "
            "(`alembic upgrade head` would run none either); configure the context with a "
            "connection and call it when not in offline mode",
        ],
        consecutive=True,
    )
    skipped = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert skipped, result.outlines
    for line in skipped:
        assert (
            "blocked: upgrade[3f2a9c1b7d40-create_orders] failed (migrations/env.py: env.py "
            "returned without calling context.run_migrations()" in line
        ), line
    result.stdout.no_fnmatch_line("*internal error*")
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_step_error_env_py_catches_is_still_the_steps_failure(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # env.py logs the error and returns: `alembic downgrade` would exit 0 with nothing done
    env = ENV_CONNECTION.format(per_migration=False).replace(
        """    with context.begin_transaction():
        context.run_migrations()""",
        """    try:
        with context.begin_transaction():
            context.run_migrations()
    except Exception as exc:
        print("migration failed:", exc)""",
    )
    assert "except Exception" in env
    revisions = with_rev(CLEAN, 1, downgrade='op.drop_column("orders", "nonesuch")')
    write_project(pytester.path, revisions, env=env)
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip or cycle")
    # the cycle meets the same error: skipped as blocked by the roundtrip
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "downgrade of 8c1e5a2f9b63 (add status) failed",
            "file: migrations/versions/0001_8c1e5a2f9b63.py",
            '*0001_8c1e5a2f9b63.py:*: op.drop_column("orders", "nonesuch")',
            "SQL:",
            "    ALTER TABLE orders DROP COLUMN nonesuch",
            "error:",
            '    UndefinedColumn: column "nonesuch" of relation "orders" does not exist',
            "    (env.py caught this error and returned normally: `alembic` would exit with "
            "status 0 and the step not done; let the error through env.py)",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*internal error*")
    result.stdout.no_fnmatch_line("*Traceback*")


def test_an_empty_downgrade_of_a_schema_changing_revision_fails_its_roundtrip(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # history has no view of it (a merge point or a data-only revision may rightly have an
    # empty downgrade): the roundtrip measures that this upgrade changes the schema
    revisions = with_rev(CLEAN, 2, downgrade='"""Nothing to undo."""\npass')
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-v", "-k", "history or d07b4e")
    # and safety[d07b4e...] passes; data[d07b4e...] is skipped, pointing at the roundtrip
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *: upgrading d07b4e6c2a15 (index status) again after its "
            "downgrade fails without rows too (see roundtrip[[]d07b4e6c2a15-index_status[]])"
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "alembic.ini::history PASSED*",
            esc("alembic.ini::roundtrip[d07b4e6c2a15-index_status] FAILED*"),
            "roundtrip of d07b4e6c2a15 (index status) (migrations/versions/0002_d07b4e6c2a15.py)",
            "downgrade() of d07b4e6c2a15 (index status) in "
            "migrations/versions/0002_d07b4e6c2a15.py does nothing (only pass/docstring), but "
            "its upgrade changes the schema; write it, or list the revision in irreversible",
            "downgrade of d07b4e6c2a15 (index status) did not restore the schema before it:",
            "  downgrade of d07b4e6c2a15 (index status) left index public.orders.ix_orders_status",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")

    write_project(pytester.path, revisions, settings='irreversible = ["d07b4e"]\n')
    result = run_checks(pytester, inner_dsn, "-v")
    # no roundtrip item for an irreversible revision (its upgrade item stays); the cycle stops
    # above it, and with the head irreversible nothing is above it: no cycle item
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines([esc("alembic.ini::upgrade[d07b4e6c2a15-index_status] PASSED*")])
    result.stdout.no_fnmatch_line(esc("*roundtrip[[]d07b4e6c2a15*"))
    result.stdout.no_fnmatch_line("*::cycle*")


@pytest.mark.parametrize(
    "project", ["newsbot", "timetracker", "seo_pipeline", "clinnexus", "infobot"]
)
def test_clean_fixture_projects_pass_every_migration_item(
    pytester: pytest.Pytester, inner_dsn: str, schemaguard_postgres: PostgresServer, project: str
) -> None:
    source = FIXTURES / project
    if not source.is_dir():
        pytest.fail(f"fixture project {project} is missing")
    shutil.copytree(source, pytester.path, dirs_exist_ok=True)
    # projects that need pgvector get a server that has it when the suite's server has not
    needs_vector = "vector" in (pytester.path / "pyproject.toml").read_text()
    dsn = inner_dsn if not needs_vector or schemaguard_postgres.has_extension("vector") else None
    result = run_checks(pytester, dsn, "-v", "-k", "history or upgrade or roundtrip or cycle")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 4, result.stdout.str()
    assert "failed" not in outcomes and "skipped" not in outcomes, result.stdout.str()
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*::history PASSED*", esc("*::roundtrip[*PASSED*"), "*::cycle PASSED*"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


MIGRATION_DEFECTS = sorted(
    name
    for name, defect in DEFECTS.items()
    if defect.check in ("history", "upgrade", "roundtrip", "cycle")
)

_BACKOFF = "downgrade of e61b7c3a0f58 (dlq retry backoff)"
_SUMMARY = "downgrade of 2f9a6b8d1c44 (optional summary, index published_at)"
_DIGESTS = "downgrade of c47d19e2f035 (create digests and pending publications)"

# What each migration defect's own failure section must say (fnmatch patterns, one a line, in
# order) and the outcomes of the whole run (passed, failed, skipped).  The sentence that names
# the defect's object comes first.
REPORTED: dict[str, tuple[list[str], tuple[int, int, int]]] = {
    "downgrade_only_pass": (
        [
            "downgrade() of e61b7c3a0f58 (dlq retry backoff) in "
            "migrations/versions/e61b7c3a0f58_dlq_retry_backoff.py does nothing "
            "(only pass/docstring), but its upgrade changes the schema; write it, or list the "
            "revision in irreversible",
            f"{_BACKOFF} did not restore the schema before it:",
            f"  {_BACKOFF} left function public.dlq_backoff(attempts integer)",
        ],
        (10, 2, 0),
    ),
    "revision_import_error": (
        [
            "cannot load the revision files of alembic.ini "
            "(in migrations/versions/2f9a6b8d1c44_optional_summary_index_published_at.py, "
            "line 13): ImportError: cannot import name 'SUMMARY_MAX_LENGTH' from "
            "'newsbot.db.models' (*)"
        ],
        (0, 1, 0),
    ),
    "two_heads": (
        [
            "2 head(s) (9d0e4b7f2a16 (add article language), e61b7c3a0f58 (dlq retry backoff)), "
            "expected 1: merge them (`alembic merge heads`), or set heads = 2 if the branches "
            "are meant to stay apart"
        ],
        (13, 1, 0),
    ),
    "broken_down_revision": (
        [
            "revision e61b7c3a0f58 (migrations/versions/e61b7c3a0f58_dlq_retry_backoff.py) has "
            "down_revision '2f9a6b8d1c45', which no revision file defines"
        ],
        (0, 1, 0),
    ),
    "upgrade_fails_midway": (
        [
            "upgrade of c47d19e2f035 (create digests and pending publications) failed",
            "SQL:",
            "    CREATE INDEX ix_pending_publications_channel ON pending_publications (chanel)",
            "error:",
            '    UndefinedColumn: column "chanel" does not exist',
        ],
        (5, 1, 6),
    ),
    "downgrade_keeps_enum": (
        [
            "  downgrade of 7a51c3f09e62 (formalise diagnostics objects) left type "
            "public.diagnostic_status",
            "upgrade after the downgrade of 7a51c3f09e62 (formalise diagnostics objects) failed",
            '    DuplicateObject: type "diagnostic_status" already exists',
        ],
        (6, 2, 0),
    ),
    "downgrade_keeps_enum_checkfirst": (
        ["  downgrade of 8e3f2a4c6b90 (add article status) left type public.article_status"],
        (10, 2, 0),
    ),
    "downgrade_keeps_index": (
        [f"  {_SUMMARY} left index public.articles.ix_articles_published_at"],
        (11, 1, 0),
    ),
    "downgrade_keeps_nullable": (
        [f"  {_SUMMARY} changed column public.articles.summary: nullable false → true"],
        (11, 1, 0),
    ),
    "downgrade_keeps_server_default": (
        [f"  {_BACKOFF} changed column public.dlq.attempts: default (none) → 0"],
        (11, 1, 0),
    ),
    "downgrade_keeps_check": (
        [f"  {_BACKOFF} left constraint public.dlq.ck_dlq_attempts_non_negative"],
        (11, 1, 0),
    ),
    "downgrade_keeps_sequence": (
        [f"  {_DIGESTS} left sequence public.digest_issue_seq"],
        (10, 2, 0),
    ),
    "downgrade_keeps_trigger": (
        [
            "  downgrade of b3e8f6d21c90 (tasks full text search) left trigger "
            "public.tasks.trg_tasks_search_vector"
        ],
        (7, 1, 0),
    ),
    "downgrade_keeps_function": (
        [f"  {_BACKOFF} left function public.dlq_backoff(attempts integer)"],
        (10, 2, 0),
    ),
}


def failure_section(output: str, title: str) -> list[str]:
    """The lines of the failure section whose ``____ title ____`` header starts with ``title``
    (up to the next section header or the short summary)."""
    lines = output.splitlines()
    found: list[str] | None = None
    for line in lines[lines.index(next(x for x in lines if "= FAILURES =" in x)) + 1 :]:
        header = line.startswith("_") and line.endswith("_") and " " in line
        if header or line.startswith("="):
            if found is not None:
                return found
            if header and line.strip("_ ").startswith(title):
                found = []
            continue
        if found is not None:
            found.append(line)
    if found is None:
        raise AssertionError(f"no failure section {title!r} in\n{output}")
    return found


def test_the_defect_table_covers_every_migration_defect() -> None:
    assert sorted(REPORTED) == MIGRATION_DEFECTS


@pytest.mark.parametrize("name", MIGRATION_DEFECTS)
def test_every_migration_defect_of_the_catalogue_is_reported_where_it_is(
    pytester: pytest.Pytester,
    inner_dsn: str,
    schemaguard_postgres: PostgresServer,
    tmp_path: Path,
    name: str,
) -> None:
    defect = DEFECTS[name]
    expected, (passed, failed, skipped) = REPORTED[name]
    shutil.copytree(
        copy_project(defect.project, tmp_path / "clean"), pytester.path, dirs_exist_ok=True
    )
    apply_defect(name, pytester.path)
    needs_vector = "vector" in (pytester.path / "pyproject.toml").read_text()
    dsn = inner_dsn if not needs_vector or schemaguard_postgres.has_extension("vector") else None
    result = run_checks(pytester, dsn, "-v")
    result.assert_outcomes(passed=passed, failed=failed, skipped=skipped)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    if defect.check in ("history", "cycle") or defect.revision is None:
        title = defect.check
    else:
        title = f"{defect.check}[{defect.revision}-"
    result.stdout.fnmatch_lines([esc(f"*::{title}*FAILED*")])
    # only the named item's own section counts: another item reporting it is not enough
    section = failure_section(result.stdout.str(), title)
    pytest.LineMatcher(section).fnmatch_lines([esc(line) for line in expected])
    text = "\n".join(section)
    for mention in defect.mentions:
        assert mention in text, f"{name}: {mention!r} not in the section\n{text}"
    # the object, as the report names it: schema objects as `<kind> <qualified name>`,
    # revisions, heads, files and statements by their ids, paths and SQL
    kind, names = defect.object.split(" ", 1)
    if kind in ("revision", "heads", "statement"):
        for part in names.removeprefix("file ").split(", "):
            assert part in text, f"{name}: {defect.object!r} not named\n{text}"
    else:
        assert defect.object in expected[0], f"{name}: {defect.object!r} not in {expected[0]!r}"
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "failing_upgrade"])
def test_outcomes_under_xdist_are_those_of_a_serial_run(
    pytester: pytest.Pytester, inner_dsn: str, broken: bool
) -> None:
    revisions = CLEAN
    if broken:
        revisions = with_rev(
            CLEAN, 1, upgrade='op.execute("ALTER TABLE orders ADD COLUMN s order_status_typo")'
        )
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-n", "2", "-v")
    if not broken:
        result.assert_outcomes(passed=8)
        assert result.ret == pytest.ExitCode.OK
    else:
        # each worker runs its share; one item reports the failure, the dependants are skipped
        result.assert_outcomes(passed=3, failed=1, skipped=4)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines([esc("*upgrade[8c1e5a2f9b63-add_status]*")])
        # the summary groups skips per location; under xdist the groups come in any order
        for line in (
            "SKIPPED [[]1[]] migrations/versions/0001_8c1e5a2f9b63.py:1: ",
            "SKIPPED [[]2[]] migrations/versions/0002_d07b4e6c2a15.py:1: ",
            "SKIPPED [[]1[]] alembic.ini:1: ",
        ):
            result.stdout.fnmatch_lines(
                [line + "needs 8c1e5a2f9b63-add_status, whose upgrade failed"]
            )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_the_report_header_names_the_migrations_head_and_baseline(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # without a baseline the header is checked on the clean project's run (first test above)
    write_project(pytester.path, CLEAN)
    result = run_checks(
        pytester, inner_dsn, "-k", "history", "-o", "schemaguard_baseline=reports/schema.sql"
    )
    result.stdout.fnmatch_lines(
        [*HEADER_LINES, "schemaguard: baseline reports/schema.sql (missing)"]
    )


def test_tool_alembic_is_found_when_alembic_ini_only_configures_logging(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # infobot's alembic.ini has only logging sections; its configuration is [tool.alembic]
    shutil.copytree(FIXTURES / "infobot", pytester.path, dirs_exist_ok=True)
    pyproject = pytester.path / "pyproject.toml"
    text = pyproject.read_text()
    assert 'alembic_config = "pyproject.toml"\n' in text
    pyproject.write_text(text.replace('alembic_config = "pyproject.toml"\n', ""))
    result = run_checks(pytester, inner_dsn, "-v")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 4, result.stdout.str()
    assert "failed" not in outcomes and "skipped" not in outcomes, result.stdout.str()
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "schemaguard: migrations pyproject.toml: * revisions, head *",
            "pyproject.toml::history PASSED*",
            esc("pyproject.toml::roundtrip[*PASSED*"),
            "pyproject.toml::cycle PASSED*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize(
    ("ini", "reason"),
    [
        ("logging", "alembic.ini has no [[]alembic[]] section"),
        ("no_script_location", "alembic.ini has no script_location in [[]alembic[]]"),
        ("none", "alembic.ini does not exist"),
    ],
)
def test_no_script_location_anywhere_is_a_usage_error(
    pytester: pytest.Pytester, inner_dsn: str, ini: str, reason: str
) -> None:
    write_project(pytester.path, CLEAN)
    # neither alembic.ini nor pyproject.toml says where the migrations are
    (pytester.path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\n\n[tool.schemaguard]\n'
    )
    config = pytester.path / "alembic.ini"
    if ini == "none":
        config.unlink()
    elif ini == "logging":
        config.write_text("[loggers]\nkeys = root\n\n[logger_root]\nlevel = WARNING\n")
    else:
        config.write_text("[alembic]\nprepend_sys_path = .\n")
    result = run_checks(pytester, inner_dsn)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: schemaguard: no Alembic script_location found: {reason}, pyproject.toml "
            "has no [[]tool.alembic[]] table (in *); set alembic_config = "
            "'path/to/alembic.ini' in [[]tool.schemaguard[]], or script_location in "
            "[[]alembic[]] or [[]tool.alembic[]]"
        ]
    )
    assert len(result.stderr.lines) == 1 or not result.stderr.lines[1].strip(), result.stderr
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stderr.no_fnmatch_line("*Traceback*")


def test_a_configured_alembic_config_without_script_location_is_a_usage_error(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, CLEAN)
    (pytester.path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\n\n'
        '[tool.schemaguard]\nalembic_config = "alembic.ini"\n'
    )
    (pytester.path / "alembic.ini").write_text("[loggers]\nkeys = root\n")
    result = run_checks(pytester, inner_dsn)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: schemaguard: alembic_config = 'alembic.ini': alembic.ini has no [[]alembic[]] "
            "section (pyproject.toml has no [[]tool.alembic[]] table); set script_location to "
            "the directory holding env.py"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stderr.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize(
    ("ini", "toml", "found"),
    [
        ("[alembic]\nscript_location = migrations\n", "", "alembic.ini"),
        ("[alembic]\nscript_location = migrations\n", TOOL_ALEMBIC, "alembic.ini"),
        ("[loggers]\nkeys = root\n", TOOL_ALEMBIC, "pyproject.toml"),
        ("[alembic]\nprepend_sys_path = .\n", TOOL_ALEMBIC, "pyproject.toml"),
        (None, TOOL_ALEMBIC, "pyproject.toml"),
    ],
    ids=["ini", "ini-first", "logging-only-ini", "ini-without-location", "no-ini"],
)
def test_the_default_configuration_is_the_first_naming_a_script_location(
    tmp_path: Path, ini: str | None, toml: str, found: str
) -> None:
    if ini is not None:
        (tmp_path / "alembic.ini").write_text(ini)
    (tmp_path / "pyproject.toml").write_text(toml + "[tool.schemaguard]\n")
    assert find_alembic_config(tmp_path, None) == tmp_path / found
    # a configured file is taken as it is, relative to the configuration's directory
    (tmp_path / "other").mkdir()
    (tmp_path / "other/alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    assert find_alembic_config(tmp_path, "other/alembic.ini") == tmp_path / "other/alembic.ini"


def test_the_heap_is_set_aside_from_full_collections_while_items_run(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """``gc.freeze()`` while the items run (the heap made before them is most of it), still
    while pytest's cleanup sweeps for unraisable exceptions, and ``gc.unfreeze()`` at the
    session's last cleanup, so the collections after it see every object as usual; frozen
    again when the interpreter exits, so that its last collection does not sweep the heap
    (the exit handlers registered before the run's, such as this conftest's, run after it).
    A run without ``--schemaguard`` leaves the collector alone."""
    write_project(
        pytester.path,
        CLEAN[:1],
        conftest="""
        import atexit
        import gc

        def pytest_runtest_call(item):
            print(f"frozen during {item.name}: {gc.get_freeze_count() > 0}")

        def pytest_unconfigure(config):
            print(f"frozen at unconfigure: {gc.get_freeze_count() > 0}")
            # registered after the run's own exit handler: runs before it
            atexit.register(
                lambda: print(f"frozen after the last cleanup: {gc.get_freeze_count() > 0}")
            )

        atexit.register(lambda: print(f"frozen at exit: {gc.get_freeze_count() > 0}"))
        """,
    )
    result = run_checks(pytester, inner_dsn, "-s")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*frozen during history: True*",
            "*frozen during cycle: True*",
            "frozen at unconfigure: True",
            "frozen after the last cleanup: False",
            "frozen at exit: True",
        ]
    )
    plain = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    assert plain.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    plain.stdout.fnmatch_lines(
        [
            "frozen at unconfigure: False",
            "frozen after the last cleanup: False",
            "frozen at exit: False",
        ]
    )


def _leaves_in_its_session(
    pytester: pytest.Pytester,
    dsn: str,
    prefix: str,
    title: str,
    statement: str,
    leaked: str,
    what: str,
) -> pytest.RunResult:
    """Two revisions: ``prefix``00001 (``title``) runs ``statement`` and leaves ``what`` in
    env.py's session; ``prefix``00002 raises when the SQL condition ``leaked`` holds. Each
    item passes, having run in a new session; the cycle, one session as `alembic upgrade
    head` from base, fails as that would, saying why the items before it passed."""
    leaks = Rev(
        f"{prefix}00001",
        None,
        title,
        f"""
        op.execute("{statement}")
        op.create_table("a", sa.Column("id", sa.Integer, primary_key=True))
        """,
        'op.drop_table("a")',
    )
    checks = Rev(
        f"{prefix}00002",
        f"{prefix}00001",
        "needs a fresh session",
        f"""
        op.execute(
            "DO $$ BEGIN IF {leaked} THEN "
            "RAISE EXCEPTION '{what} leaked from the previous revision'; END IF; END $$"
        )
        op.create_table("b", sa.Column("id", sa.Integer, primary_key=True))
        """,
        'op.drop_table("b")',
    )
    write_project(pytester.path, [leaks, checks])
    result = run_checks(pytester, dsn)
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ cycle _*",
            f"second upgrade of {prefix}00002 (needs a fresh session) failed",
            f"*{what} leaked from the previous revision*",
            f"note: {prefix}00001 ({title}) leaves a temporary table or a changed setting in "
            "env.py's session; the cycle runs every revision in one session, as `alembic "
            "upgrade head` from base does, so the revisions after it see it (their upgrade and "
            "roundtrip items ran in a new session)",
        ]
    )
    result.stdout.no_fnmatch_line("*roundtrip*FAILED*")
    result.stdout.no_fnmatch_line("*upgrade*FAILED*")
    return result


def test_a_setting_a_revision_leaves_in_its_session_does_not_reach_the_next(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """A ``SET`` in one revision ends the pass after it (read with ``SHOW ALL``): the next
    revision runs in a new session, as a user's next ``alembic upgrade`` would."""
    result = _leaves_in_its_session(
        pytester,
        inner_dsn,
        "5e7a000",
        "sets lock_timeout",
        "SET lock_timeout = '1234ms'",
        "current_setting('lock_timeout') = '1234ms'",
        "lock_timeout",
    )
    # the second revision's DO block loads plpgsql, whose settings then appear at their
    # defaults: that is not something it leaves behind
    result.stdout.no_fnmatch_line("note: 5e7a00000002*")


def test_a_temporary_table_a_revision_leaves_in_its_session_does_not_reach_the_next(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """A temporary table one revision leaves ends the pass after it: the next revision runs in
    a new session, where the table does not exist, as a user's next ``alembic upgrade``."""
    _leaves_in_its_session(
        pytester,
        inner_dsn,
        "7e39000",
        "stages rows",
        "CREATE TEMPORARY TABLE staged (id integer)",
        "to_regclass('pg_temp.staged') IS NOT NULL",
        "staged",
    )


# Statements holding "%": SQLAlchemy sends them to psycopg and psycopg2 with each "%" doubled.
PERCENT = [
    Rev(
        "5e1ec7000001",
        None,
        "discounts",
        "op.execute('CREATE TABLE discounts (id integer PRIMARY KEY, \"rate %\" text)')",
        'op.drop_table("discounts")',
    ),
    Rev(
        "5e1ec7000002",
        "5e1ec7000001",
        "discount cap",
        "op.execute('ALTER TABLE discounts ADD COLUMN \"max %\" integer NOT NULL DEFAULT 0')",
        "op.execute('ALTER TABLE discounts DROP COLUMN \"max %\"')",
    ),
    Rev(
        "5e1ec7000003",
        "5e1ec7000002",
        "discount label",
        """op.execute("SELECT 1 / 0 AS \\"100%\\", '50%' AS label")""",
        "pass",
    ),
]


@pytest.mark.parametrize(
    ("driver", "error"),
    [
        ("psycopg", "DivisionByZero"),
        ("psycopg2", "DivisionByZero"),
        ("asyncpg", "DivisionByZeroError"),  # asyncpg's own class, not SQLAlchemy's adapter's
        ("pg8000", "DivisionByZero"),  # named by its SQLSTATE, as psycopg names it
    ],
)
def test_statements_with_percent_signs_are_shown_as_written(
    pytester: pytest.Pytester, inner_dsn: str, driver: str, error: str
) -> None:
    write_project(pytester.path, PERCENT, settings=f'driver = "{driver}"\n')
    result = run_checks(pytester, inner_dsn, "-k", "upgrade or safety")
    result.stdout.fnmatch_lines(
        [
            "SQL:",
            "    SELECT 1 / 0 AS \"100%\", '50%' AS label",
            "error:",
            f"    {error}: division by zero",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*SafetyWarning: revision 5e1ec7000002 (discount cap), *: ALTER TABLE discounts "
            'ADD COLUMN "max %" integer NOT NULL DEFAULT 0 took ACCESS EXCLUSIVE*',
        ]
    )
    result.stdout.no_fnmatch_line("*%%*")


@pytest.mark.parametrize("option", ["--lf", "--sw"])
def test_last_failed_and_stepwise_find_the_item_that_failed(
    pytester: pytest.Pytester, inner_dsn: str, option: str
) -> None:
    """pytest 9.2 and later match the ids they read back from the cache structurally (name
    ``roundtrip``, parameters ``<revision>``): the items' own ids must be built the same way."""
    revisions = with_rev(CLEAN, 2, downgrade="pass")  # the index stays after the downgrade
    write_project(pytester.path, revisions)
    args = ("--schemaguard", f"--schemaguard-dsn={inner_dsn}", "-k", MIGRATION_ITEMS)
    first = pytester.runpytest_subprocess(*args, option)
    first.stdout.fnmatch_lines(["FAILED alembic.ini::roundtrip[[]d07b4e6c2a15-*"])
    again = pytester.runpytest_subprocess(*args, option, "-v")
    # only that item runs: the others are not collected (--lf) or deselected (--sw)
    outcomes = again.parseoutcomes()
    assert outcomes["failed"] == 1
    assert "passed" not in outcomes
    again.stdout.fnmatch_lines(["*::roundtrip[[]d07b4e6c2a15-* FAILED*"])


@pytest.mark.parametrize(
    "args,ran",
    [
        # one item by its id, as pytest prints it
        (["alembic.ini::roundtrip[8c1e5a2f9b63-add_status]"], [ALL_CLEAN_IDS[4]]),
        # every revision's item of one kind, by its name without the revision
        (["alembic.ini::upgrade"], ALL_CLEAN_IDS[1:7:2]),
        # an id and a test file: both, and nothing else
        (
            ["alembic.ini::cycle", "tests/test_app.py"],
            [ALL_CLEAN_IDS[7], "tests/test_app.py::test_app"],
        ),
        # the configuration file: every check
        (["alembic.ini"], ALL_CLEAN_IDS),
        # a test directory only: the checks come first, as always
        (["tests"], [*ALL_CLEAN_IDS, "tests/test_app.py::test_app"]),
    ],
    ids=["one id", "one name", "id and file", "the file", "a directory"],
)
def test_ids_on_the_command_line_select_the_items(
    pytester: pytest.Pytester, inner_dsn: str, args: list[str], ran: list[str]
) -> None:
    write_project(pytester.path, CLEAN)
    pytester.mkpydir("tests").joinpath("test_app.py").write_text("def test_app():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "--schemaguard",
        f"--schemaguard-dsn={inner_dsn}",
        "-p",
        "no:cacheprovider",
        "-v",
        *args,
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    passed = [line.split(" PASSED")[0] for line in result.outlines if " PASSED" in line]
    # (the file and a directory also run the data and safety items, tested elsewhere)
    assert [p for p in passed if p in ALL_CLEAN_IDS or p.startswith("tests/")] == ran
    assert result.parseoutcomes()["passed"] == len(passed)


def _sees_versions(expected: tuple[str, ...]) -> str:
    """Code for upgrade()/downgrade(): fail unless Alembic's version table holds ``expected``,
    asked through Alembic and in SQL (as the project's own code would ask)."""
    return textwrap.dedent(
        f"""
        context = op.get_context()
        assert tuple(sorted(context.get_current_heads())) == {expected!r}
        rows = op.get_bind().execute(sa.text("SELECT version_num FROM alembic_version"))
        assert tuple(sorted(r[0] for r in rows)) == {expected!r}
        rows = op.get_bind().exec_driver_sql("SELECT version_num FROM public.alembic_version")
        assert tuple(sorted(r[0] for r in rows)) == {expected!r}
        versions = sa.table("alembic_version", sa.column("version_num"))
        rows = op.get_bind().execute(sa.select(versions.c.version_num))
        assert tuple(sorted(r[0] for r in rows)) == {expected!r}
        """
    )


A, B, C, D, E = (f"{c}{i}000000000{c}" for i, c in enumerate("abcde", 1))
VERSIONS_SEEN = [
    Rev(
        A,
        None,
        "create t",
        'op.create_table("t", sa.Column("id", sa.Integer))',
        'op.drop_table("t")',
    ),
    Rev(
        B,
        A,
        "left",
        'op.add_column("t", sa.Column("l", sa.Text))' + _sees_versions((A,)),
        'op.drop_column("t", "l")' + _sees_versions((B,)),
    ),
    Rev(C, A, "right", 'op.add_column("t", sa.Column("r", sa.Text))', 'op.drop_column("t", "r")'),
    Rev(D, (B, C), "merge", _sees_versions((B, C)), _sees_versions((D,))),
    Rev(
        E,
        D,
        "after the merge",
        'op.create_index("ix_t_l", "t", ["l"])' + _sees_versions((D,)),
        'op.drop_index("ix_t_l", table_name="t")' + _sees_versions((E,)),
    ),
]


@pytest.mark.parametrize("per_migration", [False, True], ids=["one-transaction", "per-migration"])
def test_revisions_see_the_version_table_as_alembic_leaves_it(
    pytester: pytest.Pytester, inner_dsn: str, per_migration: bool
) -> None:
    """Upgrades and downgrades that read the version table (through Alembic or in SQL) see
    the revisions applied before them, across a branch and its merge, in every step of the
    checks, whether the steps share env.py's transaction or each commits."""
    write_project(
        pytester.path, VERSIONS_SEEN, env=ENV_CONNECTION.format(per_migration=per_migration)
    )
    result = run_checks(pytester, inner_dsn, "-v")
    result.stdout.no_fnmatch_line("*AssertionError*")
    result.assert_outcomes(passed=12)  # history, 5 upgrade, 5 roundtrip, cycle


# A bug of the plugin's own, simulated: the comparison raises (with a password in its text).
BROKEN_COMPARISON = """
import pytest_schemaguard.{module} as module

calls = []
original = module.{function}


def broken(*args, **kwargs):
    calls.append(1)
    raise RuntimeError("boom at postgresql://app:s3cret@db/app")


module.{function} = broken


def pytest_sessionfinish(session):
    print(f"\\nCALLS {{len(calls)}}")
"""


@pytest.mark.parametrize(
    ("module", "function", "selection", "first", "checks"),
    [
        (
            "migrations.runner",
            "compare_snapshots",
            MIGRATION_ITEMS,
            "roundtrip[3f2a9c1b7d40-create_orders]",
            "migration checks",
        ),
        (
            "data.walk",
            "take_snapshot",
            "data",
            "data[8c1e5a2f9b63-add_status]",  # the first revision seeds no rows: no snapshot
            "data checks",
        ),
    ],
)
def test_an_internal_error_fails_one_item_and_blocks_the_rest_without_running_again(
    pytester: pytest.Pytester,
    inner_dsn: str,
    module: str,
    function: str,
    selection: str,
    first: str,
    checks: str,
) -> None:
    """An exception of the plugin's own code is reported once, with its traceback; the checks
    after it are skipped as blocked by it, and no later item runs a pass to meet it again."""
    conftest = BROKEN_COMPARISON.format(module=module, function=function)
    write_project(pytester.path, CLEAN, conftest=conftest)
    result = run_checks(pytester, inner_dsn, "-k", selection, "-s")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, outcomes
    assert outcomes.get("skipped", 0) >= 1, outcomes
    cause = "internal error: RuntimeError: boom at postgresql://app:***@db/app"
    result.stdout.fnmatch_lines(
        [
            f"*_ {esc(first)} _*",
            f"* (migrations/versions/000?_{first.split('[')[1].split('-')[0]}.py)",
            f"pytest-schemaguard failed while running the {checks}: its own code raised "
            "RuntimeError: boom at postgresql://app:***@db/app; this is a bug of "
            "pytest-schemaguard: please report it with the traceback below",
            "Traceback (most recent call last):",
        ],
        consecutive=True,
    )
    skipped = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert skipped, result.outlines
    for line in skipped:
        assert line.endswith(f"blocked: {first} failed ({cause})"), line
    result.stdout.fnmatch_lines(["CALLS 1"])  # not once more for each item after it
    result.stdout.no_fnmatch_line("*s3cret*")


# A second table created with an enum type an earlier revision created (optuna's v2.4.0.a):
# `alembic upgrade head` from an empty database works, because SQLAlchemy remembers in the
# run that it created the type and skips its CREATE TYPE; upgrading from the parent in a run
# of its own fails.
SHARED_ENUM = [
    Rev(
        "5a1f00000001",
        None,
        "create studies",
        """
        op.create_table(
            "studies",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("direction", sa.Enum("MIN", "MAX", name="direction"), nullable=False),
        )
        """,
        """
        op.drop_table("studies")
        sa.Enum(name="direction").drop(op.get_bind())
        """,
    ),
    Rev(
        "5a1f00000002",
        "5a1f00000001",
        "create directions",
        """
        op.create_table(
            "directions",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("direction", sa.Enum("MIN", "MAX", name="direction"), nullable=False),
        )
        """,
        'op.drop_table("directions")',
    ),
    Rev(
        "5a1f00000003",
        "5a1f00000002",
        "index directions",
        'op.create_index("ix_directions_direction", "directions", ["direction"])',
        'op.drop_index("ix_directions_direction", table_name="directions")',
    ),
]


def test_a_revision_only_one_run_from_base_reaches_fails_alone_and_the_rest_is_checked(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """The try of one run from base is one `alembic upgrade`: SQLAlchemy's memo of the types
    the run created carries from step to step, so the revision after it is reached and
    checked (before, each step of that run had the memo cleared, and it failed too); so is the
    cycle's upgrade from base to head."""
    write_project(pytester.path, SHARED_ENUM)
    result = run_checks(pytester, inner_dsn, "-k", "upgrade or roundtrip or cycle")
    # its roundtrip is skipped (its upgrade failed); the revision after it and the cycle pass
    result.assert_outcomes(failed=1, passed=5, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*_ upgrade[[]5a1f00000002-create_directions[]] _*",
            "upgrade of 5a1f00000002 (create directions) "
            "(migrations/versions/0001_5a1f00000002.py)",
            "upgrade of 5a1f00000002 (create directions) failed",
            "file: migrations/versions/0001_5a1f00000002.py",
            "at:   0001_5a1f00000002.py:*: op.create_table(",
            "SQL:",
            "    CREATE TYPE direction AS ENUM ('MIN', 'MAX')",
            "error:",
            '    DuplicateObject: type "direction" already exists',
            "fix:  type direction exists already at the parent (an earlier revision created it),"
            " and this upgrade creates it again: use it without creating it, postgresql.ENUM("
            'name="direction", create_type=False) (`alembic upgrade head` on an empty database '
            "may still work: SQLAlchemy skips the CREATE TYPE of a type it created earlier in "
            "the same run; an upgrade from the parent does not)",
            "upgrading from base to 5a1f00000002 (create directions) in one run (as `alembic "
            "upgrade 5a1f00000002` on an empty database does) works: the checks after it ran "
            "from there",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*in one run failed too*")


def test_the_data_checks_after_a_revision_only_one_run_from_base_reaches_still_run(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, SHARED_ENUM)
    result = run_checks(pytester, inner_dsn, "-k", "upgrade or data")
    # upgrade[5a1f00000002] fails; its data item is skipped, pointing at it; the data item of
    # the revision after it runs, after one run from base through it
    result.assert_outcomes(failed=1, passed=4, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *0001_5a1f00000002.py:1: upgrade of 5a1f00000002 (create "
            "directions) fails without rows too (see upgrade[[]5a1f00000002-create_directions[]])"
        ]
    )
    result.stdout.no_fnmatch_line("*whose upgrade failed*")


def _without_downgrades(project: Path) -> None:
    """Remove the downgrade() function of every revision file of ``project``."""
    for path in (project / "migrations" / "versions").glob("*.py"):
        source = path.read_text()
        path.write_text(source[: source.index("\n\ndef downgrade():")] + "\n")


def test_irreversible_star_checks_migrations_that_only_go_forward(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """A project whose revisions have no downgrade() by policy (OpenStack's, say): every
    upgrade is checked, nothing is downgraded, and there is no cycle item that could not
    fail."""
    write_project(pytester.path, CLEAN, settings='irreversible = ["*"]\n')
    _without_downgrades(pytester.path)
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*::history PASSED*",
            esc("*::upgrade[3f2a9c1b7d40-create_orders] PASSED*"),
            esc("*::upgrade[8c1e5a2f9b63-add_status] PASSED*"),
            esc("*::upgrade[d07b4e6c2a15-index_status] PASSED*"),
        ]
    )
    result.stdout.no_fnmatch_line("*roundtrip*")
    result.stdout.no_fnmatch_line("*cycle*")

    # without the setting, history says in one line that no revision has a downgrade() and
    # names the setting (their round trips are skipped, pointing at it); no cycle item either
    write_project(pytester.path, CLEAN)
    _without_downgrades(pytester.path)
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=3, failed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "history of alembic.ini",
            "none of the 3 revisions has a downgrade() function (a history that only goes "
            'forward, as OpenStack\'s): irreversible = [[]"*"[]] in [[]tool.schemaguard[]] checks '
            "each upgrade and downgrades nothing; or write them",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*has no downgrade() function*")
    result.stdout.no_fnmatch_line("*cycle*")

    # when some revisions have one, each of those without is named
    write_project(pytester.path, CLEAN)
    _without_downgrades(pytester.path)
    first = pytester.path / "migrations" / "versions" / "0000_3f2a9c1b7d40.py"
    first.write_text(first.read_text() + '\n\ndef downgrade():\n    op.drop_table("orders")\n')
    result = run_checks(pytester, inner_dsn, "-k", "history")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "migrations/versions/0001_8c1e5a2f9b63.py (8c1e5a2f9b63 (add status)) has no "
            "downgrade() function; write it, or list the revision in irreversible",
            "migrations/versions/0002_d07b4e6c2a15.py (d07b4e6c2a15 (index status)) has no "
            "downgrade() function; write it, or list the revision in irreversible",
        ],
        consecutive=True,
    )


ENV_APP_SETTINGS = """
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
engine = create_engine(config.app_settings["database_url"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

APP_SETTINGS_FIXTURE = """
import pytest
from alembic.config import Config


@pytest.fixture(scope="session")
def schemaguard_alembic_config():
    def make(url):
        config = Config("alembic.ini")
        config.app_settings = {"database_url": url}  # an attribute env.py reads
        return config

    return make
"""


def test_version_locations_in_the_file_and_an_attribute_from_the_fixture(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    """The recipe of docs/recipes/env_py.md for a project whose tool sets an attribute of its
    own on the Config and several version locations (OpenStack's neutron-db-manage): the
    locations in alembic.ini, the attribute from the overridden fixture."""
    write_project(pytester.path, CLEAN, env=ENV_APP_SETTINGS, conftest=APP_SETTINGS_FIXTURE)
    # the last revision lives in a second version location
    expand = pytester.path / "migrations" / "expand"
    expand.mkdir()
    (pytester.path / "migrations" / "versions" / "0002_d07b4e6c2a15.py").rename(
        expand / "0002_d07b4e6c2a15.py"
    )
    ini = pytester.path / "alembic.ini"
    ini.write_text(
        ini.read_text().replace(
            "path_separator = os\n",
            "path_separator = space\nversion_locations = %(here)s/migrations/versions "
            "%(here)s/migrations/expand\n",
        )
    )
    result = run_checks(pytester, inner_dsn)
    result.assert_outcomes(passed=8)  # history, 3 upgrades, 3 round trips, the cycle
    result.stdout.fnmatch_lines(["schemaguard: migrations alembic.ini: 3 revisions, head *"])


def test_an_alembic_configuration_given_by_an_absolute_path_outside_the_rootdir(
    pytester: pytest.Pytester, inner_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The migrations an application ships in an installed package (its alembic.ini in
    site-packages, given by its absolute path): the items are named by the path to it from the
    rootdir, not ``::alembic.ini::…`` (pytest's id for a file outside the rootdir)."""
    shipped = write_project(tmp_path_factory.mktemp("site-packages") / "shipped", CLEAN)
    (shipped / "pyproject.toml").unlink()
    (pytester.path / "pyproject.toml").write_text(
        f'[tool.schemaguard]\nalembic_config = "{(shipped / "alembic.ini").as_posix()}"\n'
    )
    relative = Path(os.path.relpath(shipped / "alembic.ini", pytester.path)).as_posix()
    assert relative.startswith("../")
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=len(ALL_CLEAN_IDS))
    result.stdout.fnmatch_lines(
        [esc(node.replace("alembic.ini", relative, 1)) + " PASSED*" for node in ALL_CLEAN_IDS]
    )
    result.stdout.no_fnmatch_line("::*")
