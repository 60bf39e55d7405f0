"""The baseline check and --schemaguard-update-baseline: inner pytest runs of fixture projects,
and the replay of pg_dump files into a real database."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from defects import DEFECTS, apply_defect, copy_project

from pytest_schemaguard import binaries
from pytest_schemaguard.errors import ServerError
from pytest_schemaguard.parity.baseline import normalise_dump, replay_baseline, write_atomically
from pytest_schemaguard.parity.checks import UPDATE_COMMAND
from pytest_schemaguard.server import Database, PostgresServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BASELINE_DEFECTS = sorted(name for name, d in DEFECTS.items() if d.check == "baseline")


def run_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, project: Path, *args: str
) -> pytest.RunResult:
    monkeypatch.chdir(project)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--schemaguard", *args)


def set_key(project: Path, line: str) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert "[tool.schemaguard]\n" in text
    pyproject.write_text(text.replace("[tool.schemaguard]\n", f"[tool.schemaguard]\n{line}\n"))


def dsn(postgres: PostgresServer) -> str:
    return f"--schemaguard-dsn={postgres.url}"


def require_system() -> None:
    try:
        binaries.find_binaries("system", root=Path.cwd())
    except ServerError as exc:
        pytest.skip(f"no system PostgreSQL binaries to compare versions against: {exc}")


# ------------------------------------------------------------------------------ checking


def test_clean_baseline_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    project = copy_project("timetracker", pytester.path)
    result = run_checks(
        pytester, monkeypatch, project, dsn(schemaguard_postgres), "-k", "baseline and not legacy"
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize("name", BASELINE_DEFECTS)
def test_baseline_defect_is_caught_and_named(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    name: str,
) -> None:
    defect = DEFECTS[name]
    project = copy_project(defect.project, pytester.path)
    apply_defect(name, project)
    result = run_checks(
        pytester, monkeypatch, project, dsn(schemaguard_postgres), "-k", "baseline and not legacy"
    )
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    kind, qualified = defect.object.split(" ", 1)
    result.stdout.fnmatch_lines(
        [
            "*baseline: * against the migrations at head",
            "* differs from the schema the migrations build at head:",
            f"  {kind} {qualified}: present only in migrations at head",
            "*schema difference* between baseline and migrations at head:*",
            f"If the migrations are right, rewrite the baseline with: {UPDATE_COMMAND}",
        ]
    )
    for mention in defect.mentions:
        assert mention in result.stdout.str()
    result.stdout.no_fnmatch_line("*Traceback*")
    # object-level differences, never a textual diff of the dumps
    result.stdout.no_fnmatch_line("@@ *")


def test_missing_baseline_fails_with_the_command_that_creates_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    project = copy_project("newsbot", pytester.path)
    set_key(project, 'baseline = "reports/schema.sql"')
    result = run_checks(pytester, monkeypatch, project, dsn(schemaguard_postgres), "-k", "baseline")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "baseline: reports/schema.sql against the migrations at head",
            "the baseline file reports/schema.sql does not exist (*).",
            "Create it from the migrations at head with:",
            f"    {UPDATE_COMMAND}",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert not (project / "reports").exists()


def test_baseline_revision_compares_an_earlier_schema(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    """timetracker's legacy dump is the schema before the last revision (full-text search on
    tasks): at head it lacks that revision's objects; at the revision before, it matches."""
    project = copy_project("timetracker", pytester.path)
    set_key(project, 'baseline_revision = "7a51c3f09e62"')
    result = run_checks(
        pytester, monkeypatch, project, dsn(schemaguard_postgres), "-k", "baseline and not legacy"
    )
    # The committed legacy dump describes head, so at the earlier revision it has more.
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "baseline: reports/schema_baseline_legacy.sql against the migrations at "
            "7a51c3f09e62 (*)",
            "*: present only in baseline",
        ]
    )
    result.stdout.no_fnmatch_line("*present only in migrations*")


# ------------------------------------------------------------------------------ updating


WAIT_FOR_END = """
from pathlib import Path


def test_after_the_checks():
    # the baseline check ran first; its file is written only when the session ends
    assert not Path("reports/schema.sql").exists()
"""


def test_update_baseline_twice_gives_identical_files(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    project = copy_project("newsbot", pytester.path)
    set_key(project, 'baseline = "reports/schema.sql"')
    (project / "tests").mkdir()
    (project / "tests" / "test_after.py").write_text(WAIT_FOR_END)
    baseline = project / "reports" / "schema.sql"

    first = run_checks(
        pytester,
        monkeypatch,
        project,
        dsn(schemaguard_postgres),
        "--schemaguard-update-baseline",
        "-k",
        "baseline or after_the_checks",
    )
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["schemaguard: wrote baseline reports/schema.sql"])
    written = baseline.read_bytes()
    text = written.decode()
    assert "CREATE TABLE public.articles (" in text
    assert "Dumped from database version" not in text
    assert "Dumped by pg_dump version" not in text
    assert "alembic_version" not in text
    assert " OWNER TO " not in text
    restrict = re.findall(r"^\\(?:un)?restrict (\S+)$", text, re.M)
    assert set(restrict) <= {"schemaguard"}
    assert list(project.joinpath("reports").iterdir()) == [baseline]  # no temporary files

    (project / "tests" / "test_after.py").unlink()
    baseline.unlink()
    second = run_checks(
        pytester,
        monkeypatch,
        project,
        dsn(schemaguard_postgres),
        "--schemaguard-update-baseline",
        "-k",
        "baseline",
    )
    second.assert_outcomes(passed=1)
    assert baseline.read_bytes() == written

    third = run_checks(
        pytester,
        monkeypatch,
        project,
        dsn(schemaguard_postgres),
        "--schemaguard-update-baseline",
        "-k",
        "baseline",
    )
    third.stdout.fnmatch_lines(["schemaguard: baseline reports/schema.sql is up to date"])
    assert baseline.read_bytes() == written

    # and the written baseline passes the check
    check = run_checks(pytester, monkeypatch, project, dsn(schemaguard_postgres), "-k", "baseline")
    check.assert_outcomes(passed=1)


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_update_rewrites_a_stale_baseline(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    xdist: tuple[str, ...],
) -> None:
    project = copy_project("timetracker", pytester.path)
    apply_defect("baseline_missing_column", project)
    args = (dsn(schemaguard_postgres), "-k", "baseline and not legacy", *xdist)
    update = run_checks(pytester, monkeypatch, project, *args, "--schemaguard-update-baseline")
    update.assert_outcomes(passed=1)
    update.stdout.fnmatch_lines(["schemaguard: wrote baseline reports/schema_baseline_legacy.sql"])
    text = (project / "reports" / "schema_baseline_legacy.sql").read_text()
    assert "diagnostics_available smallint[]" in text
    run_checks(pytester, monkeypatch, project, *args).assert_outcomes(passed=1)


# ------------------------------------------------------------------------------ version skew


@pytest.mark.parametrize(
    ("writer", "checker"),
    [("embedded", "system"), ("system", "embedded")],
    ids=["18-on-15", "15-on-18"],
)
def test_baseline_from_another_postgresql_version_compares_cleanly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, writer: str, checker: str
) -> None:
    """A baseline written by one major version's pg_dump, checked on the other major version."""
    require_system()
    system = binaries.find_binaries("system", root=Path.cwd())
    embedded = binaries.find_binaries("embedded", root=Path.cwd())
    if system.major == embedded.major:
        pytest.skip(f"system and embedded PostgreSQL are both version {system.major}")
    project = copy_project("timetracker", pytester.path)
    set_key(project, 'baseline = "reports/schema.sql"')
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('baseline = "reports/schema_baseline_legacy.sql"\n', "", 1)
    )
    assert tomllib.loads(pyproject.read_text())["tool"]["schemaguard"]["baseline"] == (
        "reports/schema.sql"
    )
    written = run_checks(
        pytester,
        monkeypatch,
        project,
        f"--schemaguard-postgres={writer}",
        "--schemaguard-update-baseline",
        "-k",
        "baseline and not legacy",
    )
    written.assert_outcomes(passed=1)
    text = (project / "reports" / "schema.sql").read_text()
    # pg_dump 17 and later write SET transaction_timeout, which older servers do not know
    assert ("SET transaction_timeout = 0;" in text) == (writer == "embedded")

    checked = run_checks(
        pytester,
        monkeypatch,
        project,
        f"--schemaguard-postgres={checker}",
        "-k",
        "baseline and not legacy",
    )
    checked.assert_outcomes(passed=1)
    checked.stdout.fnmatch_lines(["schemaguard: PostgreSQL *"])
    checked.stdout.no_fnmatch_line("*Traceback*")


def test_committed_legacy_dump_compares_on_both_versions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """timetracker's committed baseline was dumped by pg_dump 15 (with \\restrict); it compares
    cleanly on the embedded PostgreSQL 18 and on the system PostgreSQL."""
    project = copy_project("timetracker", pytester.path)
    text = (project / "reports" / "schema_baseline_legacy.sql").read_text()
    assert "\\restrict " in text
    sources = ["embedded"]
    try:
        binaries.find_binaries("system", root=Path.cwd())
        sources.append("system")
    except ServerError:
        pass
    for source in sources:
        result = run_checks(
            pytester,
            monkeypatch,
            project,
            f"--schemaguard-postgres={source}",
            "-k",
            "baseline and not legacy",
        )
        result.assert_outcomes(passed=1)


# ------------------------------------------------------------------------------ replay


FOREIGN_DUMP = r"""--
-- PostgreSQL database dump
--

\restrict AbC123xyz

-- Dumped from database version 19.1
-- Dumped by pg_dump version 19.1

SET statement_timeout = 0;
SET lock_timeout = 0;
SET transaction_timeout = 0;
SET some_future_parameter = on;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET client_min_messages = warning;

\connect - prod_owner

CREATE SCHEMA public;
ALTER SCHEMA public OWNER TO prod_owner;
COMMENT ON SCHEMA public IS 'standard public schema';
CREATE SCHEMA billing;
ALTER SCHEMA billing OWNER TO prod_owner;
CREATE EXTENSION IF NOT EXISTS plpgsql WITH SCHEMA pg_catalog;
COMMENT ON EXTENSION plpgsql IS 'PL/pgSQL procedural language';

CREATE FUNCTION billing.touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := now();  -- a semicolon; inside the body
    RETURN NEW;
END;
$$;
ALTER FUNCTION billing.touch() OWNER TO prod_owner;

CREATE TABLE billing.invoices (
    id integer NOT NULL,
    note text DEFAULT 'a ''quoted''; value'::text,
    updated_at timestamp with time zone
);
ALTER TABLE billing.invoices OWNER TO prod_owner;
CREATE TRIGGER invoices_touch BEFORE UPDATE ON billing.invoices
    FOR EACH ROW EXECUTE FUNCTION billing.touch();
GRANT SELECT ON TABLE billing.invoices TO reporting_role;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE prod_owner IN SCHEMA billing GRANT SELECT ON TABLES TO reader;

\unrestrict AbC123xyz
"""


def test_replay_skips_what_does_not_describe_the_schema(schemaguard_database: Database) -> None:
    report = replay_baseline(FOREIGN_DUMP, schemaguard_database.dsn)
    assert report.problems == []
    assert report.meta_commands == 3
    assert report.skipped["owner"] == 4
    assert report.skipped["privileges"] == 3
    assert report.skipped["extension comment"] == 1
    assert report.skipped["CREATE SCHEMA of an existing schema"] == 1
    assert report.skipped["SET some_future_parameter (unknown to this server)"] == 1
    with schemaguard_database.engine.connect() as conn:
        note = conn.exec_driver_sql(
            "select column_default from information_schema.columns "
            "where table_schema = 'billing' and column_name = 'note'"
        ).scalar()
        trigger = conn.exec_driver_sql(
            "select tgname from pg_trigger where tgname = 'invoices_touch'"
        ).scalar()
    assert note == "'a ''quoted''; value'::text"
    assert trigger == "invoices_touch"


def test_replay_reports_a_statement_the_server_rejects(schemaguard_database: Database) -> None:
    dump = "CREATE TABLE public.a (id integer);\n\nCREATE INDEX a_x ON public.a (x);\n"
    report = replay_baseline(dump, schemaguard_database.dsn, file="schema.sql")
    assert [(p.line, p.statement) for p in report.problems] == [
        (3, "CREATE INDEX a_x ON public.a (x)")
    ]
    assert 'column "x" does not exist' in report.problems[0].error


# ------------------------------------------------------------------------------ pure helpers


def test_normalise_dump_is_stable() -> None:
    one = (
        "--\n-- Dumped from database version 18.1\n-- Dumped by pg_dump version 18.1\n\n"
        "\\restrict Xy1\r\nCREATE TABLE t ();\n\\unrestrict Xy1\n"
    )
    two = one.replace("Xy1", "Zz9").replace("18.1", "18.2")
    assert normalise_dump(one) == normalise_dump(two)
    assert normalise_dump(one, header=["h"]).startswith("-- h\n\n--\n")
    assert "\\restrict schemaguard\n" in normalise_dump(one)
    assert "\r" not in normalise_dump(one)


def test_write_atomically_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "schema.sql"
    write_atomically(target, "one\n")
    write_atomically(target, "two\n")
    assert target.read_text() == "two\n"
    assert [p.name for p in target.parent.iterdir()] == ["schema.sql"]
