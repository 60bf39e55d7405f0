"""Histories as real projects have them: a pre-Alembic schema built by create_all, a revision
that only works in the same run as its parent, merges written by `alembic merge`, empty and
data-only revisions, an empty history, a revision without downgrade().

The projects live in tests/data/projects/<name>/ as Alembic's own commands wrote them (init,
revision, merge); each test plants one defect and checks that it is reported where it is.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from migration_projects import run_checks, write_project

PROJECTS = Path(__file__).resolve().parent / "data" / "projects"


def esc(pattern: str) -> str:
    """An fnmatch pattern matching ``[`` and ``]`` literally (node ids have them)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(ch, ch) for ch in pattern)


def copy_project(pytester: pytest.Pytester, name: str) -> Path:
    shutil.copytree(
        PROJECTS / name,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return pytester.path


def verdicts(result: pytest.RunResult) -> dict[str, str]:
    """``{item name: PASSED | FAILED | SKIPPED}`` from a ``-v`` run, serial or under xdist."""
    found = {}
    for line in result.stdout.lines:
        m = re.match(r"(?:\[gw\d+\] \[ *\d+%\] )?(PASSED|FAILED|SKIPPED) \S*::(\S+)", line)
        if m is None:
            m2 = re.match(r"\S*::(\S+) (PASSED|FAILED|SKIPPED)", line)
            if m2 is not None:
                found[m2.group(1)] = m2.group(2)
        else:
            found[m.group(2)] = m.group(1)
    return found


def plant(root: Path, revision: str, old: str, new: str) -> None:
    """Replace ``old`` (exactly once) in the file of ``revision``."""
    [path] = (root / "migrations" / "versions").glob(f"{revision}_*.py")
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {path.name}"
    path.write_text(text.replace(old, new))


# ----------------------------------------------------------------------- bootstrap at base

BOOTSTRAP_IDS = [
    "alembic.ini::history",
    "alembic.ini::upgrade[b1c0ffee0001-customer_email]",
    "alembic.ini::roundtrip[b1c0ffee0001-customer_email]",
    "alembic.ini::upgrade[b1c0ffee0002-orders]",
    "alembic.ini::roundtrip[b1c0ffee0002-orders]",
    "alembic.ini::cycle",
]


def test_a_create_all_bootstrap_builds_the_pre_alembic_tables_at_base(
    pytester: pytest.Pytester, inner_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first revision alters `customers`, which only the bootstrap hook creates; hooks.py
    # sits next to pyproject.toml and is found from there, whatever the current directory
    root = copy_project(pytester, "bootstrap_at_base")
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run_checks(pytester, inner_dsn, "-v", "-c", str(root / "pyproject.toml"))
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.OK
    # node ids are shown relative to the current directory
    result.stdout.fnmatch_lines([esc(f"*{node} PASSED*") for node in BOOTSTRAP_IDS])

    # planted: the downgrade of the first revision forgets its column
    plant(root, "b1c0ffee0001", '    op.drop_column("customers", "email")\n', "")
    result = run_checks(pytester, inner_dsn, "-v", "-c", str(root / "pyproject.toml"))
    result.assert_outcomes(passed=4, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            esc("*alembic.ini::roundtrip[b1c0ffee0001-customer_email] FAILED*"),
            "*alembic.ini::cycle FAILED*",
            "roundtrip of b1c0ffee0001 (customer email) "
            "(migrations/versions/b1c0ffee0001_customer_email.py)",
            "downgrade of b1c0ffee0001 (customer email) did not restore the schema before it:",
            "  downgrade of b1c0ffee0001 (customer email) left column public.customers.email",
            "upgrade after the downgrade of b1c0ffee0001 (customer email) failed",
            '    DuplicateColumn: column "email" of relation "customers" already exists',
            "cycle base -> head -> base -> head of alembic.ini",
            "second upgrade of b1c0ffee0001 (customer email) failed",
        ]
    )
    # the bootstrapped tables are the schema at base: never reported as left or missing
    result.stdout.no_fnmatch_line("*table public.customers*")
    result.stdout.no_fnmatch_line("*table public.products*")
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        (
            "hooks:create_tables",
            "hooks has no attribute 'create_tables'",
        ),
        (
            "bootstrap_hooks:create_legacy_tables",
            "importing bootstrap_hooks failed: ModuleNotFoundError: No module named "
            "'bootstrap_hooks'",
        ),
    ],
    ids=["attribute", "module"],
)
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_bootstrap_hook_that_cannot_be_imported_is_one_usage_error(
    pytester: pytest.Pytester, inner_dsn: str, hook: str, message: str, xdist: list[str]
) -> None:
    # under xdist too: the controller checks it before any worker starts
    root = copy_project(pytester, "bootstrap_at_base")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"hooks:create_legacy_tables"', repr(hook).replace("'", '"'))
    )
    result = run_checks(pytester, inner_dsn, *xdist)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: schemaguard: [[]tool.schemaguard[]] bootstrap in pyproject.toml = "
            f"'{hook}': {message}"
        ]
    )
    assert [line for line in result.stderr.lines if line.strip()] == [result.stderr.lines[0]]
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stderr.no_fnmatch_line("*Traceback*")


def test_start_without_bootstrap_is_a_usage_error(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    root = copy_project(pytester, "bootstrap_at_base")
    (root / "pyproject.toml").write_text(
        '[tool.schemaguard]\nalembic_config = "alembic.ini"\nstart = "b1c0ffee0001"\n'
    )
    result = run_checks(pytester, inner_dsn)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: schemaguard: [[]tool.schemaguard[]] start in pyproject.toml = "
            "'b1c0ffee0001' needs a bootstrap hook that builds the schema at that revision: "
            "set bootstrap = 'package.module:function'"
        ]
    )
    result.stderr.no_fnmatch_line("*Traceback*")


# --------------------------------------------------- a revision that only works in one run

NOTE = (
    "5e55a0000003 (order notes) fails when upgraded on its own (see "
    "upgrade[5e55a0000003-order_notes]); this check ran after upgrading from base to it in "
    "one run"
)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_revision_failing_on_its_own_hides_nothing_that_one_run_reaches(
    pytester: pytest.Pytester, inner_dsn: str, xdist: list[str]
) -> None:
    # 5e55a0000002 keeps the orders' notes in a temporary table (ON COMMIT DROP) and
    # 5e55a0000003 reads it: `alembic upgrade head` from an empty database works (one
    # transaction), a database at 5e55a0000002 cannot be upgraded (the release bug)
    root = copy_project(pytester, "session_state")
    result = run_checks(pytester, inner_dsn, "-v", "--junitxml=report.xml", *xdist)
    result.assert_outcomes(passed=10, failed=1, skipped=1, warnings=5)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    seen = verdicts(result)
    # the round trip of 5e55a0000002 runs as a user would (down, then up again in a new run):
    # creating the temporary table again does not collide with the first one
    assert seen["roundtrip[5e55a0000002-take_notes_out_of_orders]"] == "PASSED"
    assert seen["upgrade[5e55a0000003-order_notes]"] == "FAILED"
    assert seen["roundtrip[5e55a0000003-order_notes]"] == "SKIPPED"
    assert seen["upgrade[5e55a0000004-paid_at]"] == "PASSED"
    assert seen["roundtrip[5e55a0000005-paid_after_created]"] == "PASSED"
    assert seen["cycle"] == "PASSED"
    result.stdout.fnmatch_lines(
        [
            "upgrade of 5e55a0000003 (order notes) "
            "(migrations/versions/5e55a0000003_order_notes.py)",
            "upgrade of 5e55a0000003 (order notes) failed",
            "file: migrations/versions/5e55a0000003_order_notes.py",
            "at:   5e55a0000003_order_notes.py:*: op.execute(*",
            "SQL:",
            "    INSERT INTO order_notes (order_id, body) SELECT order_id, note FROM moved_notes",
            "error:",
            '    UndefinedTable: relation "moved_notes" does not exist',
            "upgrading from base to 5e55a0000003 (order notes) in one run (as `alembic upgrade "
            "5e55a0000003` on an empty database does) works: the checks after it ran from there",
        ]
    )
    result.stdout.fnmatch_lines(
        [esc(f"*CheckNoteWarning: roundtrip of 5e55a0000005 (paid after created) *: {NOTE}")]
    )
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] migrations/versions/5e55a0000003_order_notes.py:1: "
            "needs 5e55a0000003-order_notes, whose upgrade failed"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    # the item reported once the one-run try was known: its own report says it (the JUnit file
    # is written from the reports as they come, on a worker too)
    junit = (root / "report.xml").read_text(encoding="utf-8")
    assert "in one run (as `alembic upgrade 5e55a0000003` on an empty database does) works" in junit

    # planted two revisions later: a downgrade that forgets the CHECK constraint
    plant(
        root,
        "5e55a0000005",
        '    op.drop_constraint("ck_orders_paid_after_created", "orders", type_="check")\n',
        "",
    )
    result = run_checks(pytester, inner_dsn, "-v", *xdist)
    # (the cycle passes: dropping paid_at drops the constraint on it)
    result.assert_outcomes(passed=9, failed=2, skipped=1, warnings=4)
    seen = verdicts(result)
    assert seen["roundtrip[5e55a0000005-paid_after_created]"] == "FAILED"
    assert seen["cycle"] == "PASSED"
    result.stdout.fnmatch_lines(
        [
            "roundtrip of 5e55a0000005 (paid after created) "
            "(migrations/versions/5e55a0000005_paid_after_created.py)",
            "downgrade of 5e55a0000005 (paid after created) did not restore the schema before it:",
            "  downgrade of 5e55a0000005 (paid after created) left constraint "
            "public.orders.ck_orders_paid_after_created",
            "*",
            esc(f"note: {NOTE}"),
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_revision_failing_also_in_one_run_skips_what_needs_it(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    root = copy_project(pytester, "session_state")
    plant(root, "5e55a0000003", "FROM moved_notes", "FROM moved_notez")
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=5, failed=1, skipped=6)
    result.stdout.fnmatch_lines(
        [
            '    UndefinedTable: relation "moved_notez" does not exist',
            "upgrading from base to 5e55a0000003 (order notes) in one run failed too",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]2[]] migrations/versions/5e55a0000004_paid_at.py:1: "
            "needs 5e55a0000003-order_notes, whose upgrade failed",
        ]
    )
    result.stdout.no_fnmatch_line("*CheckNoteWarning*")


# ------------------------------------------------------------------ branches and a merge


def test_a_merge_written_by_alembic_merge_is_no_history_finding(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    root = copy_project(pytester, "branch_merge")
    merge = "alembic.ini::{}[b4a0c0000004-merge_audit_log_and_account_flags] PASSED*"
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=10)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "alembic.ini::history PASSED*",
            esc(merge.format("upgrade")),
            esc(merge.format("roundtrip")),
            "alembic.ini::cycle PASSED*",
        ]
    )

    # planted on one branch: the downgrade forgets the sequence
    plant(root, "b4a0c0000002", '    op.execute("DROP SEQUENCE audit_seq")\n', "")
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=8, failed=2)
    result.stdout.fnmatch_lines(
        [
            "alembic.ini::history PASSED*",
            esc("alembic.ini::roundtrip[b4a0c0000002-audit_log] FAILED*"),
            esc(merge.format("roundtrip")),
            "alembic.ini::cycle FAILED*",
            "  downgrade of b4a0c0000002 (audit log) left sequence public.audit_seq",
        ]
    )
    result.stdout.no_fnmatch_line("*does nothing*")
    result.stdout.no_fnmatch_line("*Traceback*")


# -------------------------------------------------------------------- empty downgrades


def test_empty_downgrades_are_a_finding_only_when_the_upgrade_changes_the_schema(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # an empty revision (as `alembic revision` writes it) and a data-only UPDATE, both with
    # `pass` downgrades, next to schema-changing ones
    root = copy_project(pytester, "empty_downgrades")
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=10)
    assert result.ret == pytest.ExitCode.OK

    # planted: the schema-changing revision's downgrade becomes `pass` too
    plant(root, "e0d0a0000004", '    op.drop_column("settings", "updated_at")\n', "    pass\n")
    result = run_checks(pytester, inner_dsn, "-v")
    # (the cycle passes: dropping the table at base drops the column too)
    result.assert_outcomes(passed=9, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "alembic.ini::history PASSED*",
            esc("*::roundtrip[e0d0a0000002-placeholder_for_the_2_0_release] PASSED*"),
            esc("*::roundtrip[e0d0a0000003-enable_every_setting] PASSED*"),
            esc("*::roundtrip[e0d0a0000004-settings_updated_at] FAILED*"),
            "*::cycle PASSED*",
            "roundtrip of e0d0a0000004 (settings updated at) "
            "(migrations/versions/e0d0a0000004_settings_updated_at.py)",
            "downgrade() of e0d0a0000004 (settings updated at) in "
            "migrations/versions/e0d0a0000004_settings_updated_at.py does nothing (only "
            "pass/docstring), but its upgrade changes the schema; write it, or list the "
            "revision in irreversible",
            "downgrade of e0d0a0000004 (settings updated at) did not restore the schema before it:",
            "  downgrade of e0d0a0000004 (settings updated at) left column "
            "public.settings.updated_at",
            "upgrade after the downgrade of e0d0a0000004 (settings updated at) failed",
        ]
    )
    result.stdout.no_fnmatch_line("*e0d0a0000002 (placeholder*does nothing*")
    result.stdout.no_fnmatch_line("*e0d0a0000003 (enable every setting*does nothing*")
    result.stdout.no_fnmatch_line("*Traceback*")


# ----------------------------------------------------------------------- empty histories


def test_heads_0_passes_an_empty_history(pytester: pytest.Pytester, inner_dsn: str) -> None:
    write_project(pytester.path, [], settings="heads = 0\n")
    assert not list((pytester.path / "migrations" / "versions").iterdir())
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "schemaguard: migrations alembic.ini: 0 revisions, head none",
            "alembic.ini::history PASSED*",
        ]
    )


def test_no_revisions_without_heads_0_is_a_usage_error(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, [])
    result = run_checks(pytester, inner_dsn)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: schemaguard: alembic.ini: script_location migrations has no revisions "
            "(migrations/versions holds no revision files); point script_location at the "
            "directory holding env.py and versions/, or set heads = 0 if the history is meant "
            "to be empty"
        ]
    )
    result.stderr.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*Traceback*")


# --------------------------------------------------------------------- no downgrade() at all

NO_DOWNGRADE = (
    "migrations/versions/0d0e00000002_invoice_number.py (0d0e00000002 (invoice number)) has "
    "no downgrade() function; write it, or list the revision in irreversible"
)


def test_a_revision_without_downgrade_is_reported_once_by_history(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    copy_project(pytester, "no_downgrade")
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=6, failed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "alembic.ini::history FAILED*",
            esc("alembic.ini::upgrade[0d0e00000002-invoice_number] PASSED*"),
            esc("alembic.ini::roundtrip[0d0e00000002-invoice_number] SKIPPED*"),
            # the cycle goes down to the revision it cannot downgrade, and up again
            esc("alembic.ini::roundtrip[0d0e00000003-invoice_due_date] PASSED*"),
            "alembic.ini::cycle PASSED*",
            "history of alembic.ini",
            NO_DOWNGRADE,
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] migrations/versions/0d0e00000002_invoice_number.py:1: "
            "no downgrade(); see history"
        ]
    )
    assert result.stdout.str().count("has no downgrade() function") == 1
    result.stdout.no_fnmatch_line("*Traceback*")

    # selected alone, the roundtrip says it itself (a skip must not hide a failure)
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip and 0d0e00000002")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["roundtrip of 0d0e00000002 (invoice number) *", NO_DOWNGRADE])


@pytest.mark.parametrize(
    "start,what",
    [
        ("deadbeef0000", "is no revision of alembic.ini"),
        ("b1c0ffee000", "names 2 revisions (b1c0ffee0001, b1c0ffee0002)"),
    ],
    ids=["unknown", "ambiguous"],
)
def test_a_start_that_names_no_one_revision_is_a_usage_error(
    pytester: pytest.Pytester, inner_dsn: str, start: str, what: str
) -> None:
    """Otherwise every revision would run from base on the schema the hook builds at start."""
    root = copy_project(pytester, "bootstrap_at_base")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'start = "{start}"\n')
    result = run_checks(pytester, inner_dsn)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: schemaguard: [[]tool.schemaguard[]] start in pyproject.toml = '{start}' "
            f"{esc(what)}: set it to the id (or a unique prefix) of the revision whose schema "
            "the bootstrap hook builds (`alembic history` lists them)"
        ]
    )
    result.stderr.no_fnmatch_line("*Traceback*")
