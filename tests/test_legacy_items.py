"""The legacy_ddl[<file>] and fk_types items, as users meet them (pytester runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from defects import DEFECTS, apply_defect, copy_project

LEGACY_DEFECTS = sorted(n for n, d in DEFECTS.items() if d.check in ("legacy_ddl", "fk_types"))
# The incident's defect is checked on the run of test_the_incident_scripts_read_well.
INCIDENT = "legacy_incident_uuid_scripts"


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
    apply_defect(INCIDENT, project)
    # the catalogue's run of this defect (`-k legacy_ddl -rf`), asserted here for both
    result = _run(pytester, project, inner_dsn, "-k", DEFECTS[INCIDENT].check, "-rf")
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
    assert_defect_reported(result, project, INCIDENT)


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


#: For each defect: the item that must fail, and the findings its failure section must show,
#: as (code, how the script line the finding is located at begins; None for the schema itself).
#: The first is the finding about the defect's object.
EXPECTED_FINDINGS: dict[str, tuple[str, list[tuple[str, str | None]]]] = {
    "legacy_incident_uuid_scripts": (
        "legacy_ddl[db/ddl/003_time_entries.sql]",
        [
            ("missing-column", "    WHERE stopped_at IS NULL;"),
            ("missing-column", "    stopped_at  TIMESTAMPTZ,"),
            ("key-type", "    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),"),
        ],
    ),
    "legacy_uuid_key": (
        "legacy_ddl[db/repair/030_diagnostics.sql]",
        [
            ("key-type", "    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),"),
            ("default-type", "    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),"),
            ("key-type", "    template_id UUID NOT NULL"),
        ],
    ),
    "legacy_missing_column": (
        "legacy_ddl[db/repair/020_active_timer_index.sql]",
        [("missing-column", "    WHERE stopped_at IS NULL;")],
    ),
    "legacy_fk_integer_to_bigint": (
        "legacy_ddl[db/repair/030_diagnostics.sql]",
        [("fk-type", "    retry_of_id INTEGER REFERENCES diagnostic_results (id),")],
    ),
    "legacy_unparseable_statement": (
        "legacy_ddl[db/repair/020_active_timer_index.sql]",
        [
            ("parse-error", "CLUSTER time_entries USING ix_time_entries_owner_id_start_time;"),
            # the statement after the one that does not parse is still analysed
            ("missing-column", "    WHERE stopped_at IS NULL;"),
        ],
    ),
    "fk_integer_to_bigint": ("fk_types", [("fk-type", None)]),
}


def failure_section(output: str, item: str) -> list[str]:
    """The lines of ``item``'s own section under FAILURES (without its header)."""
    failures = output.split("= FAILURES =", 1)[1].splitlines()
    starts = [i for i, line in enumerate(failures) if line.startswith("_") and line.endswith("_")]
    for start, end in zip(starts, [*starts[1:], len(failures)], strict=True):
        if failures[start].strip("_ ") == item:
            section = failures[start + 1 : end]
            return [line for line in section if not line.startswith("=")]
    raise AssertionError(f"no failure section for {item} in:\n" + "\n".join(failures))


def test_every_legacy_defect_has_expected_findings() -> None:
    assert sorted(EXPECTED_FINDINGS) == LEGACY_DEFECTS


@pytest.mark.parametrize("name", [n for n in LEGACY_DEFECTS if n != INCIDENT])
def test_legacy_defects_are_caught(
    pytester: pytest.Pytester, tmp_path: Path, inner_dsn: str, name: str
) -> None:
    defect = DEFECTS[name]
    project = copy_project(defect.project, pytester.path)
    apply_defect(name, project)
    result = _run(pytester, project, inner_dsn, "-k", defect.check, "-rf")
    assert_defect_reported(result, project, name)


def assert_defect_reported(result: pytest.RunResult, project: Path, name: str) -> None:
    """The run of ``-k <check> -rf`` on ``project`` with the defect ``name`` planted fails the
    expected item, whose section shows the expected findings at their script lines."""
    defect = DEFECTS[name]
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    item, expected = EXPECTED_FINDINGS[name]
    section = failure_section(result.stdout.str(), item)
    shown = "\n".join(section)
    for mention in defect.mentions:
        assert mention in shown, (mention, shown)
    script = item.removeprefix("legacy_ddl[").removesuffix("]") if item != "fk_types" else ""
    lines = (project / script).read_text().splitlines() if script else []
    kind, obj = defect.object.split(" ", 1)
    for number, (code, text) in enumerate(expected):
        location = "schema"
        if text is not None:
            (line,) = [n for n, line in enumerate(lines, start=1) if line.startswith(text)]
            location = f"{script}:{line}"
        prefix = f"{location}: [{code}] "
        found = [line for line in section if line.startswith(prefix)]
        assert found, (prefix, shown)
        if number == 0:
            # the first finding is about the defect's object
            if kind == "statement":
                assert location == obj, (location, obj)
            else:
                table, _, column = obj.removeprefix("public.").rpartition(".")
                names = (f"{table}.{column}", f"{table}({column})")  # fk-type: t(c)
                assert any(n in line for line in found for n in names), (obj, found)
    result.stdout.fnmatch_lines([f"FAILED *::{item.replace('[', '[[]')} - *"])
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


def test_without_legacy_ddl_the_parser_is_not_imported_and_fk_types_runs(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    project = copy_project("timetracker", pytester.path)
    pyproject = project / "pyproject.toml"
    lines = pyproject.read_text(encoding="utf-8").splitlines()
    pyproject.write_text(
        "\n".join(line for line in lines if not line.startswith("legacy_ddl")) + "\n",
        encoding="utf-8",
    )
    (project / "conftest.py").write_text(
        "import sys\n"
        "def pytest_sessionfinish(session):\n"
        "    prefix = 'pytest_schemaguard.legacy.'\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith(prefix))\n"
        "    print('legacy modules:', ' '.join(loaded))\n",
        encoding="utf-8",
    )
    result = _run(pytester, project, inner_dsn, "-k", "legacy_ddl or fk_types", "-s")
    result.assert_outcomes(passed=1)  # fk_types; no legacy_ddl item
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*legacy modules: pytest_schemaguard.legacy.fk_types pytest_schemaguard.legacy.items "
            "pytest_schemaguard.legacy.pgtypes*"
        ]
    )
    for module in ("analysis", "check", "parse", "picture", "values"):
        result.stdout.no_fnmatch_line(f"*legacy modules:*pytest_schemaguard.legacy.{module}*")
    result.stdout.no_fnmatch_line("*Traceback*")
