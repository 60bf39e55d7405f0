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
from pytest_schemaguard.parity import baseline as baseline_module
from pytest_schemaguard.parity.baseline import (
    drop_roles,
    normalise_dump,
    replay_baseline,
    write_atomically,
)
from pytest_schemaguard.parity.checks import UPDATE_COMMAND
from pytest_schemaguard.server import Database, PostgresServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

BASELINE_DEFECTS = sorted(name for name, d in DEFECTS.items() if d.check == "baseline")
# How the difference line of each baseline defect reads after the object's name.
BASELINE_DIFFERENCES = {
    "baseline_missing_column": "present only in migrations at head",
    "baseline_column_type_differs": "type integer → bigint",
    "baseline_extra_index": "present only in baseline",
}


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


def test_every_baseline_defect_says_how_its_difference_reads() -> None:
    assert sorted(BASELINE_DIFFERENCES) == BASELINE_DEFECTS


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
    schema, _, local = qualified.partition(".")
    # indexes and constraints are named after their table: index public.tasks.ix_tasks_status
    named = f"{kind} {qualified}" if kind == "column" else f"{kind} {schema}.*.{local}"
    result.stdout.fnmatch_lines(
        [
            "*baseline: * against the migrations at head",
            "* differs from the schema the migrations build at head:",
            f"  {named}: {BASELINE_DIFFERENCES[name]}",
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


def test_baseline_dumped_at_an_earlier_revision_passes_with_baseline_revision(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    """A baseline dumped at a revision before head, with baseline_revision naming it, passes;
    the same file compared at head lacks the last revision's objects."""
    project = copy_project("timetracker", pytester.path)
    set_key(project, 'baseline_revision = "7a51c3f09e62"')
    args = (dsn(schemaguard_postgres), "-k", "baseline and not legacy")
    update = run_checks(pytester, monkeypatch, project, *args, "--schemaguard-update-baseline")
    update.assert_outcomes(passed=1)
    update.stdout.fnmatch_lines(["schemaguard: wrote baseline reports/schema_baseline_legacy.sql"])
    text = (project / "reports" / "schema_baseline_legacy.sql").read_text()
    assert "the migrations build at 7a51c3f09e62" in text
    assert "search_vector" not in text  # added by the head revision, b3e8f6d21c90

    result = run_checks(pytester, monkeypatch, project, *args)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["schemaguard: baseline reports/schema_baseline_legacy.sql at 7a51c3f09e62"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")

    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('baseline_revision = "7a51c3f09e62"\n', ""))
    at_head = run_checks(pytester, monkeypatch, project, *args)
    at_head.assert_outcomes(failed=1)
    at_head.stdout.fnmatch_lines(
        [
            "baseline: reports/schema_baseline_legacy.sql against the migrations at head",
            "  column public.tasks.search_vector: present only in migrations at head",
        ]
    )


POLICY_FOR_A_MISSING_ROLE = (
    "CREATE POLICY tasks_reader ON public.tasks FOR SELECT TO schemaguard_reader USING (true);\n"
)


def add_policy_for_a_missing_role(project: Path) -> int:
    """Append a policy for a role no server here has to timetracker's baseline; its line."""
    baseline = project / "reports" / "schema_baseline_legacy.sql"
    text = baseline.read_text()
    baseline.write_text(text + "\n" + POLICY_FOR_A_MISSING_ROLE)
    return text.count("\n") + 2


def test_baseline_policy_for_a_missing_role_on_our_own_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """schemaguard's own server creates the role NOLOGIN for the replay, so the policy is
    compared as written: it is only in the baseline."""
    project = copy_project("timetracker", pytester.path)
    add_policy_for_a_missing_role(project)
    result = run_checks(pytester, monkeypatch, project, "-k", "baseline and not legacy")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "* differs from the schema the migrations build at head:",
            "  policy public.tasks.tasks_reader: present only in baseline",
            "1 schema difference between baseline and migrations at head: 1 only in baseline",
        ]
    )
    result.stdout.no_fnmatch_line("*failed to replay*")
    result.stdout.no_fnmatch_line("*UndefinedObject*")
    result.stdout.no_fnmatch_line("*not replayed*")
    result.stdout.no_fnmatch_line("*Traceback*")


def test_baseline_policy_for_a_missing_role_on_an_external_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    """With --schemaguard-dsn no role is created on the server (roles are cluster-wide): the
    statement is not replayed, and the item says which one and why."""
    project = copy_project("timetracker", pytester.path)
    line = add_policy_for_a_missing_role(project)
    result = run_checks(
        pytester, monkeypatch, project, dsn(schemaguard_postgres), "-k", "baseline and not legacy"
    )
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "1 statement(s) of reports/schema_baseline_legacy.sql not replayed: they name roles "
            "this server does not have, *",
            f"  line {line}: CREATE POLICY tasks_reader ON public.tasks FOR SELECT TO *",
            "      role schemaguard_reader not on this server: not replayed",
            "  The migrations cannot have built these objects on this server either.*",
            f"If the migrations are right, rewrite the baseline with: {UPDATE_COMMAND}",
        ]
    )
    result.stdout.no_fnmatch_line("*failed to replay*")
    result.stdout.no_fnmatch_line("*UndefinedObject*")
    result.stdout.no_fnmatch_line("*Traceback*")
    assert not role_exists(schemaguard_postgres, "schemaguard_reader")


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
    """A baseline written by one major version's pg_dump, checked on the other major version:
    each run's report header names the server (and binaries) that did the work."""
    require_system()
    system = binaries.find_binaries("system", root=Path.cwd())
    embedded = binaries.find_binaries("embedded", root=Path.cwd())
    if system.major == embedded.major:
        pytest.skip(f"system and embedded PostgreSQL are both version {system.major}")
    found = {"system": system, "embedded": embedded}

    def header(source: str) -> str:
        bins = found[source]
        return f"schemaguard: PostgreSQL {bins.major}.* ({source} binaries at {bins.bindir})*"

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
    # written by the writer's server, with the pg_dump of its own bin directory
    written.stdout.fnmatch_lines([header(writer), "schemaguard: wrote baseline reports/schema.sql"])
    written.stdout.no_fnmatch_line(f"schemaguard: PostgreSQL {found[checker].major}.*")
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
    # checked on the other major version
    checked.stdout.fnmatch_lines([header(checker)])
    checked.stdout.no_fnmatch_line(f"schemaguard: PostgreSQL {found[writer].major}.*")
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
    assert report.skipped["SET some_future_parameter (not a setting pg_dump writes)"] == 1
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


SESSION_DUMP = """
SET ROLE prod_owner;
SET SESSION AUTHORIZATION prod_owner;
SET LOCAL ROLE prod_owner;
CREATE TABLE public.notes (body text);
ALTER TABLE ONLY public.notes ALTER COLUMN body SET DEFAULT 'OWNER TO nobody'::text;
RESET ROLE;
"""


def test_replay_skips_set_role_and_session_authorization(
    schemaguard_database: Database,
) -> None:
    """pg_dump --role / --use-set-session-authorization write these; running them would make
    the replay act as a role of the dump's server. A string that reads 'OWNER TO' does not
    make a statement an owner change."""
    report = replay_baseline(SESSION_DUMP, schemaguard_database.dsn)
    assert report.problems == []
    assert report.skipped == {
        "SET ROLE": 2,
        "SET SESSION AUTHORIZATION": 1,
        "RESET ROLE": 1,
    }
    assert report.executed == 2
    with schemaguard_database.engine.connect() as conn:
        default = conn.exec_driver_sql(
            "select column_default from information_schema.columns "
            "where table_name = 'notes' and column_name = 'body'"
        ).scalar()
    assert default == "'OWNER TO nobody'::text"


MISSING_ROLE = "schemaguard_reader"
POLICY_DUMP = f"""
CREATE TABLE public.docs (id integer, body text);
ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY docs_read ON public.docs TO {MISSING_ROLE} USING ((id > 0));
"""


def policy_roles(db: Database) -> list[str] | None:
    with db.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "select array(select case when r = 0 then 'public' else r::regrole::text end "
            "from unnest(polroles) r order by 1) from pg_policy where polname = 'docs_read'"
        ).first()
    return None if row is None else list(row[0])


def role_exists(postgres: PostgresServer, name: str) -> bool:
    with postgres.admin() as conn:
        return (
            conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone()
            is not None
        )


def test_replay_of_a_policy_for_a_missing_role_without_creating_roles(
    schemaguard_postgres: PostgresServer, schemaguard_database: Database
) -> None:
    """On a server schemaguard did not start (--schemaguard-dsn) roles are not created: the
    statement is not replayed and is listed with the reason."""
    assert not role_exists(schemaguard_postgres, MISSING_ROLE)
    report = replay_baseline(POLICY_DUMP, schemaguard_database.dsn, file="schema.sql")
    assert report.problems == []
    assert [(p.line, p.statement, p.error) for p in report.missing_roles] == [
        (
            4,
            f"CREATE POLICY docs_read ON public.docs TO {MISSING_ROLE} USING ((id > 0))",
            f"role {MISSING_ROLE} not on this server: not replayed",
        )
    ]
    assert report.skipped == {"names a role this server does not have": 1}
    assert report.created_roles == []
    assert policy_roles(schemaguard_database) is None
    assert not role_exists(schemaguard_postgres, MISSING_ROLE)


def test_replay_of_a_policy_for_a_missing_role_creates_the_role(
    schemaguard_postgres: PostgresServer,
) -> None:
    """On schemaguard's own server the role is created NOLOGIN, so the policy replays as
    written (roles included), and dropped once the database is gone."""
    db = schemaguard_postgres.create_database()
    try:
        report = replay_baseline(POLICY_DUMP, db.dsn, create_roles=True)
        assert report.problems == []
        assert report.missing_roles == []
        assert report.created_roles == [MISSING_ROLE]
        assert policy_roles(db) == [MISSING_ROLE]
        with schemaguard_postgres.admin() as conn:
            row = conn.execute(
                "select rolcanlogin from pg_roles where rolname = %s", (MISSING_ROLE,)
            ).fetchone()
        assert row == (False,)
    finally:
        db.dispose()
        schemaguard_postgres.drop_database(db)
        with schemaguard_postgres.admin() as conn:
            kept = drop_roles(conn, [MISSING_ROLE])
    assert kept == []
    assert not role_exists(schemaguard_postgres, MISSING_ROLE)


# ------------------------------------------------------------------------------ pure helpers


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SET SESSION AUTHORIZATION prod_owner", "SET SESSION AUTHORIZATION"),
        ("SET SESSION AUTHORIZATION DEFAULT", "SET SESSION AUTHORIZATION"),
        ("SET LOCAL SESSION AUTHORIZATION 'prod_owner'", "SET SESSION AUTHORIZATION"),
        ("RESET SESSION AUTHORIZATION", "RESET SESSION AUTHORIZATION"),
        ('SET ROLE "Prod Owner"', "SET ROLE"),
        ("set session role prod_owner", "SET ROLE"),
        ("RESET ROLE", "RESET ROLE"),
        ("SET search_path = public", None),
        ("SET client_min_messages = warning", None),
        ("ALTER TABLE public.tasks OWNER TO prod_owner", "owner"),
        ('ALTER FUNCTION public.f() OWNER TO "Prod"', "owner"),
        ("ALTER TABLE ONLY public.t ALTER COLUMN c SET DEFAULT 'x OWNER TO y'::text", None),
        ('ALTER TABLE public.t RENAME COLUMN "owner" TO "to"', None),
        ("GRANT SELECT ON TABLE public.t TO reporting", "privileges"),
        ("revoke all on schema public from public", "privileges"),
        ("ALTER DEFAULT PRIVILEGES FOR ROLE a GRANT SELECT ON TABLES TO b", "privileges"),
        ('CREATE TABLE public."grant" (a integer)', None),
        ("COMMENT ON EXTENSION plpgsql IS 'PL/pgSQL'", "extension comment"),
        ("COMMENT ON TABLE public.t IS 'GRANT ALL'", None),
        ("SECURITY LABEL FOR selinux ON TABLE t IS 'x'", "security label"),
        ("CREATE PUBLICATION p FOR ALL TABLES", "replication"),
        ("CREATE POLICY p ON public.t TO reader USING (true)", None),
    ],
)
def test_statement_heads_are_classified_from_tokens(sql: str, why: str | None) -> None:
    assert baseline_module._classify(baseline_module._tokens(sql)) == why


@pytest.mark.parametrize(
    ("sql", "parameter"),
    [
        ("SET statement_timeout = 0", "statement_timeout"),
        ("SET SESSION lock_timeout TO 0", "lock_timeout"),
        ("SET LOCAL myapp.tenant = 'a'", "myapp.tenant"),
        ("SET transaction_timeout = 0", "transaction_timeout"),
        ("CREATE TABLE t (a integer)", None),
    ],
)
def test_set_parameter_is_read_from_tokens(sql: str, parameter: str | None) -> None:
    assert baseline_module._set_parameter(baseline_module._tokens(sql)) == parameter


@pytest.mark.parametrize(
    ("sql", "roles"),
    [
        ('CREATE POLICY p ON t FOR SELECT TO a, "B", PUBLIC USING ((x > 0))', ["a", "B"]),
        ("CREATE POLICY p ON t AS RESTRICTIVE TO CURRENT_USER WITH CHECK (true)", []),
        ("CREATE POLICY p ON t USING (owner = 'TO x')", []),
        ("ALTER POLICY p ON t RENAME TO q", []),
        ("ALTER POLICY p ON t TO Reporting", ["reporting"]),
        ("CREATE SCHEMA billing AUTHORIZATION billing_owner", ["billing_owner"]),
        ('CREATE USER MAPPING IF NOT EXISTS FOR "Etl" SERVER files', ["Etl"]),
        ("CREATE USER MAPPING FOR PUBLIC SERVER files", []),
        ("CREATE TABLE t (a integer)", []),
    ],
)
def test_roles_a_statement_needs_are_read_from_tokens(sql: str, roles: list[str]) -> None:
    assert baseline_module._role_references(baseline_module._tokens(sql)) == roles


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
