"""The ``safety[<rev>]`` items on a project with unsafe revisions (tests/data/projects/
risky_deploy): each finding at its revision and line, ``safety = "fail"`` failing exactly those
items, ``safety_ignore``, ``safety_since``, ``off``, xdist, every driver, a failed upgrade."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from migration_projects import CLEAN, run_checks, write_project

PROJECT = Path(__file__).resolve().parent / "data" / "projects" / "risky_deploy"
V = "migrations/versions/"
NO_TIMEOUT = (
    "took ACCESS EXCLUSIVE on table orders with no lock_timeout set: while it waits behind a "
    "long query, every read and write of orders waits behind it; set a lock_timeout at the "
    "start of upgrade() (op.execute(\"SET lock_timeout = '5s'\")) and retry the deploy when it "
    "fails [no-lock-timeout]"
)
AE = (
    "holding ACCESS EXCLUSIVE on table {table}: blocks reads and writes briefly; needs "
    "lock_timeout; set a lock_timeout first (op.execute(\"SET lock_timeout = '5s'\") at the "
    "start of upgrade()), so a long query on the table makes the migration fail and retry "
    "instead of queueing every other query behind it [access-exclusive]"
)
WIDEN = (
    f"revision 2b0000000002 (widen amount), {V}2b0000000002_widen_amount.py:17: ALTER TABLE "
    "orders ALTER COLUMN amount TYPE NUMERIC(12, 2) "
)
RENAME = (
    f"revision 5e0000000005 (rename note), {V}5e0000000005_rename_note.py:16: ALTER TABLE orders "
    "RENAME note TO remark "
)
DROP = (
    f"revision 6f0000000006 (drop legacy code), {V}6f0000000006_drop_legacy_code.py:17: ALTER "
    "TABLE customers DROP COLUMN legacy_code "
)
FINDINGS = {
    "safety[2b0000000002-widen_amount]": [
        WIDEN + "rewrote table orders (new relfilenode) holding ACCESS EXCLUSIVE; on a large "
        "table, add a new column, backfill it in batches, and swap [table-rewrite]",
        WIDEN + NO_TIMEOUT,
    ],
    "safety[3c0000000003-index_status]": [
        f"revision 3c0000000003 (index status), {V}3c0000000003_index_status.py:16: CREATE INDEX "
        "ix_orders_status ON orders (status) built index ix_orders_status on table orders "
        "holding SHARE (writes to orders wait for the whole build); create it with "
        "op.create_index(..., postgresql_concurrently=True) inside "
        "op.get_context().autocommit_block() [blocking-index-build]",
    ],
    "safety[4d0000000004-orders_customer_fk]": [
        f"revision 4d0000000004 (orders customer fk), {V}4d0000000004_orders_customer_fk.py:16: "
        "ALTER TABLE orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY(customer_id) "
        "REFERENCES customers (id) added FOREIGN KEY constraint fk_orders_customer by scanning "
        "table orders holding SHARE ROW EXCLUSIVE; add it NOT VALID (op.create_foreign_key(..., "
        "postgresql_not_valid=True)) and run ALTER TABLE orders VALIDATE CONSTRAINT "
        "fk_orders_customer in a later revision (it scans without blocking writes) "
        "[validating-constraint]",
    ],
    "safety[5e0000000005-rename_note]": [
        RENAME + "renamed column orders.note to remark: code of the previous release that still "
        "uses the old name fails during the deploy; add the new column, write both, backfill, "
        "move the reads over, and drop the old column in a later release [backward-incompatible]",
        RENAME + "renamed column orders.note " + AE.format(table="orders"),
    ],
    "safety[6f0000000006-drop_legacy_code]": [
        DROP + "dropped column customers.legacy_code, which existed at the parent: its data is "
        "gone (the downgrade cannot bring it back), and code of the previous release that still "
        "uses it fails; stop using the column in a release first (e.g. mark it deferred or "
        "remove it from the models), keep a copy of its data if it matters, and drop it in a "
        "later revision [destructive]",
        DROP + "dropped column customers.legacy_code " + AE.format(table="customers"),
    ],
}
SAFE = ["safety[1a0000000001-create_tables]", "safety[7a0000000007-safe_changes]"]


def esc(pattern: str) -> str:
    """An fnmatch pattern matching ``[`` and ``]`` literally (node ids and rules have them)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(c, c) for c in pattern)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    shutil.copytree(
        PROJECT, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    return pytester.path


def failure_lines(names: list[str]) -> list[str]:
    lines: list[str] = []
    for name in names:
        lines.append(esc(f"*_ {name} _*"))
        lines.extend(esc(line) for line in FINDINGS[name])
    return lines


def warning_lines() -> list[str]:
    """The warnings summary of a default run: each finding under its item, at its line."""
    expected = ["*warnings summary*"]
    for name, lines in FINDINGS.items():
        for line in lines:
            where = line.split(", ", 1)[1].split(": ", 1)[0]
            expected += [esc(f"alembic.ini::{name}"), esc(f"  {where}: SafetyWarning: {line}")]
    return expected


def test_default_warns_each_finding_at_its_line_and_passes(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    result = run_checks(pytester, inner_dsn, "-k", "safety")
    result.assert_outcomes(passed=7, warnings=8)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(warning_lines())
    result.stdout.no_fnmatch_line("*safety_changes*SafetyWarning*")
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_revision_deallocating_every_prepared_statement_is_measured_the_same(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    # the observer's catalog reads are prepared once per session; a revision that removes
    # every prepared statement (as psycopg does when it clears its own cache) costs them a new
    # PREPARE, not a failed migration or another measurement
    rename = project / V / "5e0000000005_rename_note.py"
    rename.write_text(
        rename.read_text().replace(
            'new_column_name="remark")\n',
            'new_column_name="remark")\n    op.execute("DEALLOCATE ALL")\n',
            1,
        )
    )
    result = run_checks(pytester, inner_dsn, "-k", "safety")
    result.assert_outcomes(passed=7, warnings=8)
    result.stdout.fnmatch_lines(warning_lines())
    result.stdout.no_fnmatch_line("*DEALLOCATE*")


def test_the_observers_reads_are_prepared_once_per_session(inner_dsn: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from pytest_schemaguard import dbapi
    from pytest_schemaguard.safety.observe import READ_LOCKED

    engine = create_engine(
        inner_dsn.replace("postgresql://", "postgresql+psycopg://"), poolclass=NullPool
    )
    names = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'schemaguard_read_%%'"
    try:
        with engine.connect() as conn:
            first = dbapi.read_json(conn, READ_LOCKED, prepared=True)
            assert dbapi.read_json(conn, READ_LOCKED, prepared=True) == first
            assert conn.exec_driver_sql(names).scalar() == 1
            conn.exec_driver_sql("DEALLOCATE ALL")
            assert dbapi.read_json(conn, READ_LOCKED, prepared=True) == first
            assert conn.exec_driver_sql(names).scalar() == 1
            conn.rollback()
    finally:
        engine.dispose()


def test_fail_fails_exactly_the_unsafe_revisions(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    result = run_checks(
        pytester, inner_dsn, "-v", "-rfs", "-k", "safety", "--schemaguard-safety=fail"
    )
    result.assert_outcomes(passed=2, failed=5)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [esc(f"alembic.ini::{name} PASSED*") for name in SAFE], consecutive=False
    )
    result.stdout.fnmatch_lines(failure_lines(list(FINDINGS)))
    result.stdout.fnmatch_lines(
        [esc(f"FAILED alembic.ini::{name} - safety of *") for name in FINDINGS]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_safety_ignore_silences_exactly_the_findings_it_names(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text()
        + 'safety = "fail"\n'
        + "safety_ignore = [\n"
        + '    "4d0000000004:validating-constraint",\n'
        + '    "*:blocking-index-build",\n'
        + '    "2b00:no-lock-timeout",\n'
        + '    "*:access-exclusive",\n'
        + "]\n"
    )
    result = run_checks(pytester, inner_dsn, "-v", "-k", "safety")
    result.assert_outcomes(passed=4, failed=3)
    for name in ("safety[3c0000000003-index_status]", "safety[4d0000000004-orders_customer_fk]"):
        result.stdout.fnmatch_lines([esc(f"alembic.ini::{name} PASSED*")])
    result.stdout.fnmatch_lines(
        [
            esc("*_ safety[2b0000000002-widen_amount] _*"),
            esc(FINDINGS["safety[2b0000000002-widen_amount]"][0]),
            esc("*_ safety[5e0000000005-rename_note] _*"),
            esc(FINDINGS["safety[5e0000000005-rename_note]"][0]),
            esc("*_ safety[6f0000000006-drop_legacy_code] _*"),
            esc(FINDINGS["safety[6f0000000006-drop_legacy_code]"][0]),
        ],
    )
    for rule in ("no-lock-timeout", "access-exclusive", "blocking-index-build"):
        result.stdout.no_fnmatch_line(esc(f"* [{rule}]"))
    result.stdout.no_fnmatch_line("*validating-constraint*")


def test_safety_since_checks_only_later_revisions_and_off_checks_none(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    result = run_checks(
        pytester, inner_dsn, "-v", "-k", "safety", "-o", "schemaguard_safety_since=4d0000000004"
    )
    result.assert_outcomes(passed=3, warnings=4)
    result.stdout.fnmatch_lines(
        [
            esc("alembic.ini::safety[5e0000000005-rename_note] PASSED*"),
            esc("alembic.ini::safety[6f0000000006-drop_legacy_code] PASSED*"),
            esc("alembic.ini::safety[7a0000000007-safe_changes] PASSED*"),
        ]
    )
    result = run_checks(pytester, inner_dsn, "-k", "safety", "--schemaguard-safety=off")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.mark.parametrize(
    ("option", "message"),
    [
        pytest.param(
            "schemaguard_safety_ignore=*:slow-query",
            "ERROR: schemaguard: schemaguard_safety_ignore in *: '*:slow-query' is not valid: "
            "expected '<revision>:<rule>' or '*:<rule>' with a rule among table-rewrite, "
            "blocking-index-build, validating-constraint, access-exclusive, no-lock-timeout, "
            "destructive, backward-incompatible",
            id="unknown-rule",
        ),
        pytest.param(
            "schemaguard_safety_since=ffff",
            "ERROR: schemaguard: schemaguard_safety_since in * = 'ffff' names no revision of the "
            "history (or more than one); use a revision id or a unique prefix",
            id="unknown-since",
        ),
    ],
)
def test_a_safety_setting_naming_nothing_is_a_usage_error(
    pytester: pytest.Pytester, project: Path, inner_dsn: str, option: str, message: str
) -> None:
    result = run_checks(pytester, inner_dsn, "-k", "safety", "-o", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    result.stderr.no_fnmatch_line("*Traceback*")


ALL = ("-k", "safety or upgrade")
SAFE_CHANGES = "7a0000000007_safe_changes.py"
PG8000_AUTOCOMMIT = [
    "*_ upgrade[[]7a0000000007-safe_changes[]] _*",
    esc(f"at:   {SAFE_CHANGES}:21: op.create_index(") + "*",
    "SQL:",
    "    CREATE INDEX CONCURRENTLY ix_orders_shipped ON orders (shipped)",
    "error:",
    "    ActiveSqlTransaction: CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
    "    (the transaction then stayed failed: InterfaceError: in failed transaction block)",
    "    with pg8000 a statement inside op.get_context().autocommit_block() still runs in a "
    "transaction block: SQLAlchemy's pg8000 dialect begins one to read the isolation level, and "
    "switching to AUTOCOMMIT does not end it, so `alembic upgrade` fails here the same way. Run "
    "the migrations on psycopg or psycopg2, or end that transaction first: "
    'op.execute("COMMIT") as the first statement of the block',
]


@pytest.mark.parametrize(
    ("args", "passed", "also_failed"),
    [
        pytest.param(("-n", "2", *ALL), 9, [], id="xdist"),
        pytest.param(("-o", "schemaguard_driver=psycopg2", *ALL), 9, [], id="psycopg2"),
        pytest.param(("-o", "schemaguard_driver=asyncpg", *ALL), 9, [], id="asyncpg"),
        # pg8000 runs CREATE INDEX CONCURRENTLY inside autocommit_block() (safe_changes) in a
        # transaction block, as `alembic upgrade head` does: said plainly, its safety blocked
        pytest.param(("-o", "schemaguard_driver=pg8000", *ALL), 7, PG8000_AUTOCOMMIT, id="pg8000"),
    ],
)
def test_same_findings_under_xdist_and_on_every_driver(
    pytester: pytest.Pytester,
    project: Path,
    inner_dsn: str,
    args: tuple[str, ...],
    passed: int,
    also_failed: list[str],
) -> None:
    result = run_checks(pytester, inner_dsn, "-rfs", "--schemaguard-safety=fail", *args)
    blocked = 1 if also_failed else 0
    result.assert_outcomes(passed=passed, failed=5 + blocked, skipped=blocked)
    for name, lines in FINDINGS.items():  # under xdist, in the order the items finished
        # (pytest 8.0 under xdist 3.5 prints the summary line without the message)
        result.stdout.fnmatch_lines([esc(f"FAILED alembic.ini::{name}") + "*"])
        result.stdout.fnmatch_lines([esc(line) for line in lines], consecutive=False)
    if also_failed:
        result.stdout.fnmatch_lines(also_failed)
        result.stdout.fnmatch_lines(
            [
                esc(
                    f"SKIPPED [1] {V}{SAFE_CHANGES}:1: blocked: "
                    "upgrade[7a0000000007-safe_changes] failed"
                )
            ]
        )
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize("driver", ["pg8000", "psycopg"])
def test_ending_the_stray_transaction_first_in_autocommit_block_passes(
    pytester: pytest.Pytester, project: Path, inner_dsn: str, driver: str
) -> None:
    # the way out the pg8000 message gives: op.execute("COMMIT") first in the block (on
    # psycopg it only draws the server's warning that no transaction is in progress)
    path = project / V / SAFE_CHANGES
    block = "    with op.get_context().autocommit_block():\n"
    assert block in path.read_text()
    path.write_text(path.read_text().replace(block, block + '        op.execute("COMMIT")\n'))
    result = run_checks(
        pytester,
        inner_dsn,
        "-v",
        "--schemaguard-safety=fail",
        "-o",
        f"schemaguard_driver={driver}",
        "-k",
        "7a0000000007 and (upgrade or safety or roundtrip)",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            esc(f"alembic.ini::{name}[7a0000000007-safe_changes] PASSED*")
            for name in ("upgrade", "roundtrip", "safety")
        ],
        consecutive=False,
    )


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2", "asyncpg"])
def test_an_env_py_in_autocommit_mode_gets_the_same_findings(
    pytester: pytest.Pytester, project: Path, inner_dsn: str, driver: str
) -> None:
    # env.py puts its connection in AUTOCOMMIT mode (privacyIDEA's does, so that each step
    # commits on its own): each statement's locks end with it, so each measured statement
    # runs in a transaction block of its own where they are read; CREATE INDEX CONCURRENTLY
    # (safe_changes) still runs alone.  One more finding, a true one: safe_changes sets its
    # lock_timeout with SET LOCAL, which in autocommit mode ends with its own statement
    env = project / "migrations" / "env.py"
    env.write_text(
        env.read_text().replace(
            "    context.configure(connection=connection, target_metadata=None)",
            '    connection = connection.execution_options(isolation_level="AUTOCOMMIT")\n'
            "    context.configure(connection=connection, target_metadata=None)",
        )
    )
    result = run_checks(
        pytester, inner_dsn, "-o", f"schemaguard_driver={driver}", "-k", "safety or upgrade"
    )
    result.assert_outcomes(passed=14, warnings=9)
    result.stdout.fnmatch_lines(warning_lines())
    result.stdout.fnmatch_lines(
        [
            esc("alembic.ini::safety[7a0000000007-safe_changes]"),
            f"  {V}{SAFE_CHANGES}:18: SafetyWarning: revision 7a0000000007 (safe changes), "
            f"{V}{SAFE_CHANGES}:18: ALTER TABLE orders ADD COLUMN shipped BOOLEAN DEFAULT false "
            "took ACCESS EXCLUSIVE on table orders with no lock_timeout set: "
            "*[[]no-lock-timeout[]]",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_failed_upgrade_blocks_its_safety_item(
    pytester: pytest.Pytester, project: Path, inner_dsn: str
) -> None:
    path = project / V / "3c0000000003_index_status.py"
    path.write_text(path.read_text().replace('["status"])', '["missing"])'))
    result = run_checks(pytester, inner_dsn, "-v", "-rs", "-k", "safety or upgrade")
    result.assert_outcomes(passed=4, failed=1, skipped=9)
    result.stdout.fnmatch_lines(
        [
            esc(
                "SKIPPED [1] migrations/versions/3c0000000003_index_status.py:1: blocked: "
                "upgrade[3c0000000003-index_status] failed"
            ),
        ],
        consecutive=False,
    )
    # the upgrade item not selected: the first safety item shows the error, the others are
    # blocked by it
    result = run_checks(pytester, inner_dsn, "-v", "-rs", "-k", "safety")
    result.assert_outcomes(passed=2, failed=1, skipped=4)
    result.stdout.fnmatch_lines(
        [
            esc("*_ safety[3c0000000003-index_status] _*"),
            esc(
                "safety of 3c0000000003 (index status) (migrations/versions/"
                "3c0000000003_index_status.py)"
            ),
            esc("upgrade of 3c0000000003 (index status) failed"),
            '*column "missing" does not exist*',
        ]
    )
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]*[]] *: blocked: safety[[]3c0000000003-index_status[]] failed *"],
        consecutive=False,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_clean_project_warns_only_what_is_true(pytester: pytest.Pytester, inner_dsn: str) -> None:
    # listed in fixtures/README.md: adding a column takes ACCESS EXCLUSIVE with no
    # lock_timeout, and the index on the existing orders table is built without CONCURRENTLY
    write_project(pytester.path, CLEAN)
    result = run_checks(pytester, inner_dsn, "-k", "safety")
    result.assert_outcomes(passed=3, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*/0001_8c1e5a2f9b63.py:16: SafetyWarning: revision 8c1e5a2f9b63 (add status), *: "
            "ALTER TABLE orders ADD COLUMN status order_status DEFAULT 'new' NOT NULL took "
            "ACCESS EXCLUSIVE on table orders with no lock_timeout set*[[]no-lock-timeout[]]",
            "*/0002_d07b4e6c2a15.py:14: SafetyWarning: revision d07b4e6c2a15 (index status), *: "
            "CREATE INDEX ix_orders_status ON orders (status) built index ix_orders_status on "
            "table orders holding SHARE *[[]blocking-index-build[]]",
        ]
    )
