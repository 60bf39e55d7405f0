"""The legacy_ddl[<file>] and fk_types items, as users meet them (pytester runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from defects import DEFECTS, apply_defect, copy_project

LEGACY_DEFECTS = sorted(n for n, d in DEFECTS.items() if d.check in ("legacy_ddl", "fk_types"))


def _run(pytester: pytest.Pytester, project: Path, dsn: str, *args: str) -> pytest.RunResult:
    """``pytest --schemaguard`` run from inside ``project``, as its developers would."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        return pytester.runpytest_subprocess(
            "--schemaguard", f"--schemaguard-dsn={dsn}", "-p", "no:cacheprovider", *args
        )


def test_clean_timetracker_scripts_pass(
    pytester: pytest.Pytester, tmp_path: Path, inner_dsn: str
) -> None:
    project = copy_project("timetracker", pytester.path)
    result = _run(pytester, project, inner_dsn, "-k", "legacy_ddl or fk_types")
    result.assert_outcomes(passed=5)  # the manual patch, three repair scripts, fk_types
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "schemaguard legacy DDL: * statements: * analysed, * irrelevant, 2 not analysed, "
            "0 parse errors",
            "  not analysed (2):",
            "    db/repair/010_roles_constraints.sql:*: DO block: the body is not analysed *",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_the_incident_scripts_read_well(
    pytester: pytest.Pytester, tmp_path: Path, inner_dsn: str
) -> None:
    project = copy_project("timetracker", pytester.path)
    apply_defect("legacy_incident_uuid_scripts", project)
    result = _run(pytester, project, inner_dsn, "-k", "legacy_ddl")
    result.assert_outcomes(failed=5, passed=1)  # 000_extensions.sql only creates extensions
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*_ legacy_ddl?db/ddl/003_time_entries.sql? _*",
            "legacy_ddl: db/ddl/003_time_entries.sql against the schema the migrations build "
            "at head and the ORM models",
            "db/ddl/003_time_entries.sql:*: [[]key-type] time_entries.id is uuid here but "
            "integer in the schema (CREATE TABLE IF NOT EXISTS time_entries *",
            "db/ddl/003_time_entries.sql:*: [[]missing-column] index predicate uses column "
            "time_entries.stopped_at, which the schema does not have (CREATE UNIQUE INDEX *",
            "* findings in db/ddl/003_time_entries.sql",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "db/migrations/2024_02_20_diagnostics.sql:*: [[]default-type] DEFAULT "
            "gen_random_uuid() cannot be stored in diagnostic_templates.id, which is integer "
            "in the schema *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "  not analysed (3):",
            "    db/ddl/000_extensions.sql:*: CREATE EXTENSION: the parser gives no structure "
            "for it (CREATE EXTENSION IF NOT EXISTS pgcrypto)",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_the_summary_is_printed_once_under_xdist(
    pytester: pytest.Pytester, tmp_path: Path, inner_dsn: str
) -> None:
    # the analysis lives in the workers; the controller prints their summary, once
    project = copy_project("timetracker", pytester.path)
    apply_defect("legacy_incident_uuid_scripts", project)
    result = _run(pytester, project, inner_dsn, "-k", "legacy_ddl", "-n", "2")
    result.assert_outcomes(failed=5, passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "schemaguard legacy DDL: * statements: * analysed, * irrelevant, 3 not analysed, "
            "0 parse errors",
            "  not analysed (3):",
            "    db/ddl/000_extensions.sql:*: CREATE EXTENSION: the parser gives no structure "
            "for it (CREATE EXTENSION IF NOT EXISTS pgcrypto)",
            "    db/ddl/000_extensions.sql:*: DO block: the body is not analysed *",
            "    db/migrations/2024_03_04_active_timer.sql:*: DO block: the body is not analysed *",
            "=* short test summary info =*",
        ]
    )
    lines = result.stdout.lines
    assert sum(line.startswith("schemaguard legacy DDL: ") for line in lines) == 1, lines
    assert sum(line.startswith("  not analysed (") for line in lines) == 1, lines
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize("name", LEGACY_DEFECTS)
def test_legacy_defects_are_caught(
    pytester: pytest.Pytester, tmp_path: Path, inner_dsn: str, name: str
) -> None:
    defect = DEFECTS[name]
    project = copy_project(defect.project, pytester.path)
    apply_defect(name, project)
    result = _run(pytester, project, inner_dsn, "-k", defect.check, "-rf")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    failures = result.stdout.str().split("= FAILURES =", 1)[1]
    for mention in defect.mentions:
        assert mention in failures, (mention, failures)
    result.stdout.fnmatch_lines([f"FAILED *::{defect.check}*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_globs_matching_nothing_fail_with_a_fix(
    pytester: pytest.Pytester, tmp_path: Path, inner_dsn: str
) -> None:
    project = copy_project("newsbot", pytester.path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.schemaguard]\n", '[tool.schemaguard]\nlegacy_ddl = ["sql/*.sql"]\n'
        )
    )
    result = _run(pytester, project, inner_dsn, "-k", "legacy_ddl")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["legacy_ddl = [[]sql/[*].sql] matched no file under *"])


def test_scripts_are_also_compared_with_the_orm_models(
    pytester: pytest.Pytester, tmp_path: Path, inner_dsn: str
) -> None:
    # the script agrees with the migrated schema (time_entries.id is integer) but not with the
    # models, which declare time_entries.id a UUID
    project = copy_project("timetracker", pytester.path)
    apply_defect("model_uuid_where_integer", project)
    (project / "db" / "seed.sql").write_text(
        "INSERT INTO time_entries (id, owner_id, task_id, start_time)\nVALUES (1, 1, 1, now());\n"
    )
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(
        text.replace(
            "[tool.schemaguard]\n", '[tool.schemaguard]\nlegacy_ddl = ["db/seed.sql"]\n'
        ).replace('legacy_ddl = ["reports/manual_db_patch.sql", "db/repair/*.sql"]\n', "")
    )
    result = _run(pytester, project, inner_dsn, "-k", "legacy_ddl")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "legacy_ddl: db/seed.sql against the schema the migrations build at head and the "
            "ORM models",
            "db/seed.sql:1: [[]value-type] * cannot be stored in time_entries.id, which is uuid "
            "in the ORM schema (INSERT INTO time_entries *",
            "1 finding in db/seed.sql",
        ]
    )
    result.stdout.no_fnmatch_line("*in the schema (INSERT*")

    # without the model defect, the same script is clean on both sides
    clean = copy_project("timetracker", tmp_path)
    (clean / "db" / "seed.sql").write_text((project / "db" / "seed.sql").read_text())
    (clean / "pyproject.toml").write_text(pyproject.read_text())
    _run(pytester, clean, inner_dsn, "-k", "legacy_ddl").assert_outcomes(passed=1)
