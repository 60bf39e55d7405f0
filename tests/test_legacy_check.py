"""Legacy DDL scripts against a real schema read from PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest

from pytest_schemaguard.legacy import (
    Finding,
    LegacyAnalysis,
    analyse_files,
    check_against_schema,
    check_fk_types,
    expand_globs,
    render_findings,
)
from pytest_schemaguard.server import Database
from pytest_schemaguard.snapshot.introspect import take_snapshot
from pytest_schemaguard.snapshot.model import Snapshot
from pytest_schemaguard.sqltext import split_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DATA = Path(__file__).parent / "data" / "legacy" / "check"
TIMETRACKER = Path(__file__).parent.parent / "fixtures" / "timetracker"


def load(db: Database, script: Path) -> Snapshot:
    """Run ``script`` statement by statement (psql meta-commands dropped) and snapshot it."""
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        for statement in split_file(script, root=script.parent).statements:
            conn.execute(statement.text.encode())
        return take_snapshot(conn)


def analyse(*names: str) -> LegacyAnalysis:
    return analyse_files([DATA / n for n in names], root=DATA)


def keyed(findings: list[Finding]) -> set[tuple[str, int | None, str, str]]:
    return {(f.file or "", f.line, f.code, f.object) for f in findings}


def line_of(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


@pytest.fixture
def integer_schema(schemaguard_database: Database) -> Snapshot:
    return load(schemaguard_database, DATA / "schema_integer.sql")


def test_uuid_design_scripts_against_integer_schema(integer_schema: Snapshot) -> None:
    analysis = analyse("uuid_design.sql")
    findings = check_against_schema(analysis, integer_schema)
    f = "uuid_design.sql"
    assert keyed(findings) == {
        (f, 5, "key-type", "public.users_web.id"),
        (f, 5, "default-type", "public.users_web.id"),
        (f, 10, "key-type", "public.tasks.id"),
        (f, 10, "default-type", "public.tasks.id"),
        (f, 14, "column-not-created", "public.time_entries"),
        (f, 15, "key-type", "public.time_entries.id"),
        (f, 15, "default-type", "public.time_entries.id"),
        (f, 16, "key-type", "public.time_entries.owner_id"),
        (f, 17, "key-type", "public.time_entries.task_id"),
        (f, 17, "fk-type", "public.time_entries.task_id"),
        (f, 19, "missing-column", "public.time_entries.stopped_at"),
        (f, 25, "missing-column", "public.time_entries.stopped_at"),
        (f, 28, "key-type", "public.api_tokens.token"),
        (f, 29, "key-type", "public.api_tokens.owner_id"),
        (f, 32, "missing-column", "public.time_entries.stopped_at"),
    }
    by_key = {(x.line, x.code): x for x in findings}
    key = by_key[(15, "key-type")]
    assert key.message == "time_entries.id is uuid here but integer in the schema"
    assert key.schema_fact == "public.time_entries.id is integer"
    assert key.quote == (
        "CREATE TABLE IF NOT EXISTS time_entries ( id UUID PRIMARY KEY DEFAULT gen_rando…"
    )
    assert key.render() == (
        "uuid_design.sql:15: [key-type] time_entries.id is uuid here but integer in the schema "
        f"({key.quote})"
    )
    assert by_key[(15, "default-type")].message == (
        "DEFAULT gen_random_uuid() cannot be stored in time_entries.id, "
        "which is integer in the schema"
    )
    text_key = by_key[(28, "key-type")]
    assert (
        text_key.message == "api_tokens.token is character varying(36) here but uuid in the schema"
    )
    predicate = by_key[(25, "missing-column")]
    assert predicate.message == (
        "index predicate uses column time_entries.stopped_at, which the schema does not have"
    )
    assert predicate.quote is not None
    assert predicate.quote.startswith(
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_time_entries_owner_active"
    )
    assert "end_time" in by_key[(19, "missing-column")].message
    assert "end_time (timestamp with time zone)" in by_key[(14, "column-not-created")].message
    fk = by_key[(17, "fk-type")]
    assert "text but references tasks(id), which is uuid" in fk.message
    assert "cannot create" in fk.message
    # the opaque statement is listed, not dropped
    assert [(n.location, n.reason.split(":")[0]) for n in analysis.not_analysed] == [
        ("uuid_design.sql:2", "CREATE EXTENSION")
    ]


def test_scripts_that_match_the_schema_give_no_findings(integer_schema: Snapshot) -> None:
    analysis = analyse("integer_design.sql")
    assert check_against_schema(analysis, integer_schema) == []
    assert analysis.count("analysed") == 8
    assert [n.reason.split(":")[0] for n in analysis.not_analysed] == [
        "CREATE EXTENSION",
        "DO block",
    ]
    assert [m.text for m in analysis.meta_commands] == ["\\set ON_ERROR_STOP on"]


def test_unparseable_statement_is_a_finding_and_the_rest_is_analysed(
    integer_schema: Snapshot,
) -> None:
    analysis = analyse("broken.sql")
    findings = check_against_schema(analysis, integer_schema)
    f = "broken.sql"
    assert keyed(findings) == {
        (f, 3, "parse-error", "broken.sql:3"),
        (f, 4, "missing-column", "public.time_entries.stopped_at"),
        (f, 5, "missing-table", "public.big_parent"),
        (f, 6, "missing-table", "public.task_links"),
        (f, 8, "fk-type", "public.task_links.big_id"),
    }
    (error,) = [x for x in findings if x.code == "parse-error"]
    assert error.message.startswith("statement does not parse: ")
    assert error.quote == "UPDATE tasks SET = 1"
    (overflow,) = [x for x in findings if x.code == "fk-type"]
    assert overflow.message == (
        "foreign key task_links(big_id) is integer but references big_parent(id), which is "
        "bigint: latent overflow once the referenced key outgrows the column"
    )
    (big_parent,) = [x for x in findings if x.object == "public.big_parent"]
    assert big_parent.message == (
        "table big_parent is created here but does not exist in the schema; "
        "1 more statement(s) use it"
    )


def listed(findings: list[Finding]) -> list[tuple[str, int | None, str, str]]:
    """Every finding, in order: a finding repeated on another line is another entry."""
    return [(f.file or "", f.line, f.code, f.object) for f in findings]


def test_parts_of_analysed_statements_are_checked(integer_schema: Snapshot) -> None:
    analysis = analyse("parts.sql")
    findings = check_against_schema(analysis, integer_schema)
    f = "parts.sql"
    stopped_at = "public.time_entries.stopped_at"
    assert listed(findings) == [
        (f, 7, "missing-column", stopped_at),  # GENERATED ALWAYS AS (stopped_at)
        (f, 9, "missing-column", stopped_at),  # PARTITION BY RANGE (stopped_at)
        (f, 11, "missing-column", stopped_at),  # COMMENT ON COLUMN
        (f, 13, "missing-table", "public.timers"),  # COMMENT ON TABLE
        (f, 15, "missing-column", stopped_at),  # trigger UPDATE OF
        (f, 18, "missing-column", stopped_at),  # trigger WHEN (NEW.stopped_at ...)
        (f, 20, "missing-column", stopped_at),  # GRANT UPDATE (stopped_at)
        (f, 21, "missing-table", "public.archived_entries"),  # REVOKE ... ON archived_entries
        (f, 23, "missing-column", stopped_at),  # UPDATE ... RETURNING
        (f, 24, "missing-column", stopped_at),  # DELETE ... RETURNING t.stopped_at
        (f, 25, "missing-column", stopped_at),  # INSERT ... RETURNING
    ]
    messages = [x.message for x in findings]
    assert messages[0] == (
        "generated column uses column time_entries.stopped_at, which the schema does not have"
    )
    assert messages[1].startswith("PARTITION BY key uses column time_entries.stopped_at")
    assert messages[4].startswith("trigger UPDATE OF uses column time_entries.stopped_at")
    # what is not compared is listed, not dropped
    assert [(n.location, n.reason) for n in analysis.not_analysed] == [
        ("parts.sql:2", 'column time_entries.note: COLLATE "C" is not analysed'),
        ("parts.sql:15", "CREATE TRIGGER: the trigger function touch() is not analysed"),
        ("parts.sql:17", "CREATE TRIGGER: the trigger function touch() is not analysed"),
    ]
    assert messages[6].startswith("GRANT on columns uses column time_entries.stopped_at")
    assert messages[8].startswith("UPDATE ... RETURNING uses column time_entries.stopped_at")
    # GRANT on a schema names no table: nothing to check
    assert analysis.count("irrelevant") == 1
    assert analysis.count("analysed") == analysis.statement_count - 1 == 11


def test_integer_key_where_the_schema_has_uuid(integer_schema: Snapshot) -> None:
    findings = check_against_schema(analyse("integer_where_uuid.sql"), integer_schema)
    f = "integer_where_uuid.sql"
    assert listed(findings) == [
        (f, 3, "key-type", "public.api_tokens.token"),
        (f, 6, "value-type", "public.api_tokens.token"),
    ]
    key, value = findings
    assert key.message == "api_tokens.token is serial here but uuid in the schema"
    assert key.schema_fact == "public.api_tokens.token is uuid"
    assert value.message == (
        "INSERT 1 cannot be stored in api_tokens.token, which is uuid in the schema"
    )


def test_sequence_default_on_a_uuid_key(integer_schema: Snapshot) -> None:
    findings = check_against_schema(analyse("nextval_on_uuid.sql"), integer_schema)
    f = "nextval_on_uuid.sql"
    assert listed(findings) == [
        (f, 3, "default-type", "public.api_tokens.token"),
        (f, 6, "default-type", "public.api_tokens.token"),
    ]
    assert findings[0].message == (
        "DEFAULT nextval() cannot be stored in api_tokens.token, which is uuid in the schema"
    )


def test_fk_types_on_the_schema(schemaguard_database: Database) -> None:
    with psycopg.connect(schemaguard_database.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big_parent (id bigserial PRIMARY KEY);"
            "CREATE TABLE int_parent (id serial PRIMARY KEY, code varchar(10) UNIQUE);"
            "CREATE TABLE child ("
            " id serial PRIMARY KEY,"
            " big_id integer REFERENCES big_parent (id),"
            " ok_id integer REFERENCES int_parent (id),"
            " wide_id bigint REFERENCES int_parent (id),"
            " code varchar(20) REFERENCES int_parent (code))"
        )
        snapshot = take_snapshot(conn)
    findings = check_fk_types(snapshot)
    assert [(x.code, x.object, x.file) for x in findings] == [
        ("fk-type", "public.child.big_id", None),
        ("fk-type", "public.child.code", None),
        ("fk-type", "public.child.wide_id", None),
    ]
    big, code, wide = findings
    assert big.message == (
        "foreign key child_big_id_fkey: child.big_id is integer but references big_parent.id, "
        "which is bigint: latent overflow once the referenced key outgrows the column"
    )
    assert big.schema_fact == "public.child: FOREIGN KEY (big_id) REFERENCES public.big_parent(id)"
    assert "character varying(20) but references int_parent.code" in code.message
    assert "wider than the key it references" in wide.message
    assert big.location == "schema"


def test_fk_types_clean_schema(integer_schema: Snapshot) -> None:
    assert check_fk_types(integer_schema) == []


def test_render_groups_by_file_and_ends_with_a_summary(integer_schema: Snapshot) -> None:
    analysis = analyse("broken.sql", "uuid_design.sql")
    findings = check_against_schema(analysis, integer_schema)
    text = render_findings(findings, analysis)
    lines = text.splitlines()
    assert lines[0] == "broken.sql"
    assert lines[1].startswith("  broken.sql:3: [parse-error] statement does not parse: ")
    assert "uuid_design.sql" in lines
    assert lines.index("uuid_design.sql") < lines.index("not analysed (1)")
    assert lines[-2] == (
        "  uuid_design.sql:2: CREATE EXTENSION: the parser gives no structure for it "
        "(CREATE EXTENSION IF NOT EXISTS pgcrypto)"
    )
    assert lines[-1] == (
        f"legacy DDL: {analysis.statement_count} statements: 10 analysed, 0 irrelevant, "
        f"1 not analysed, 1 parse error; {len(findings)} findings"
    )
    assert all("\n" not in f.render() for f in findings)
    assert render_findings([]) == "legacy DDL: 0 findings"


# ------------------------------------------------------------------------------------------
# the timetracker fixture project
# ------------------------------------------------------------------------------------------


@pytest.fixture
def timetracker_schema(schemaguard_database: Database) -> Snapshot:
    """The timetracker schema, from its committed pg_dump baseline (the schema at head)."""
    return load(schemaguard_database, TIMETRACKER / "reports" / "schema_baseline_legacy.sql")


def test_timetracker_configured_scripts_match(timetracker_schema: Snapshot) -> None:
    config = tomllib.loads((TIMETRACKER / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["schemaguard"]["legacy_ddl"]
    paths = expand_globs(patterns, root=TIMETRACKER)
    assert len(paths) >= 2
    analysis = analyse_files(paths, root=TIMETRACKER)
    findings = check_against_schema(analysis, timetracker_schema)
    assert findings == [], render_findings(findings, analysis)
    assert check_fk_types(timetracker_schema) == []


def test_timetracker_uuid_bootstrap_scripts(timetracker_schema: Snapshot) -> None:
    paths = expand_globs(["db/ddl/*.sql", "db/migrations/*.sql"], root=TIMETRACKER)
    analysis = analyse_files(paths, root=TIMETRACKER)
    findings = check_against_schema(analysis, timetracker_schema)
    found = [(x.file, x.line, x.code, x.object.removeprefix("public.")) for x in findings]

    core, users = "db/ddl/001_core.sql", "db/ddl/002_users_and_roles.sql"
    entries = "db/ddl/003_time_entries.sql"
    diagnostics = "db/migrations/2024_02_20_diagnostics.sql"
    timer = "db/migrations/2024_03_04_active_timer.sql"
    expected = [
        # every UUID key with DEFAULT gen_random_uuid() where the schema has INTEGER (serial)
        (core, 4, "default-type", "areas.id"),
        (core, 4, "key-type", "areas.id"),
        (core, 10, "default-type", "projects.id"),
        (core, 10, "key-type", "projects.id"),
        (core, 11, "key-type", "projects.area_id"),
        # tasks gained search_vector, which the bootstrap never creates
        (core, 18, "column-not-created", "tasks"),
        (core, 19, "default-type", "tasks.id"),
        (core, 19, "key-type", "tasks.id"),
        (core, 20, "key-type", "tasks.project_id"),
        (core, 29, "default-type", "resources.id"),
        (core, 29, "key-type", "resources.id"),
        (users, 4, "default-type", "users_web.id"),
        (users, 4, "key-type", "users_web.id"),
        (users, 13, "default-type", "roles.id"),
        (users, 13, "key-type", "roles.id"),
        (users, 20, "default-type", "user_roles.id"),
        (users, 20, "key-type", "user_roles.id"),
        (users, 21, "key-type", "user_roles.user_id"),
        (users, 22, "key-type", "user_roles.role_id"),
        (users, 24, "key-type", "user_roles.project_id"),
        # INSERT INTO roles (id, ...) VALUES (gen_random_uuid(), ...): once for the statement
        (users, 33, "value-type", "roles.id"),
        (entries, 3, "column-not-created", "time_entries"),  # end_time
        (entries, 4, "default-type", "time_entries.id"),
        (entries, 4, "key-type", "time_entries.id"),
        (entries, 5, "key-type", "time_entries.owner_id"),
        (entries, 6, "key-type", "time_entries.task_id"),
        (entries, 7, "key-type", "time_entries.resource_id"),
        # stopped_at instead of end_time: the column, its CHECK and the partial index predicate
        (entries, 9, "missing-column", "time_entries.stopped_at"),
        (entries, 12, "missing-column", "time_entries.stopped_at"),
        (entries, 20, "missing-column", "time_entries.stopped_at"),
        (diagnostics, 8, "default-type", "diagnostic_templates.id"),
        (diagnostics, 8, "key-type", "diagnostic_templates.id"),
        (diagnostics, 16, "default-type", "diagnostic_clients.id"),
        (diagnostics, 16, "key-type", "diagnostic_clients.id"),
        (diagnostics, 17, "key-type", "diagnostic_clients.user_id"),
        # diagnostic_results gained retry_of_id, which the script never creates
        (diagnostics, 24, "column-not-created", "diagnostic_results"),
        (diagnostics, 25, "default-type", "diagnostic_results.id"),
        (diagnostics, 25, "key-type", "diagnostic_results.id"),
        (diagnostics, 26, "key-type", "diagnostic_results.client_id"),
        (diagnostics, 27, "key-type", "diagnostic_results.template_id"),
        # status is an enum in the schema, TEXT in the script
        (diagnostics, 28, "column-type", "diagnostic_results.status"),
        # the active-timer index recreated with the stopped_at predicate
        (timer, 24, "missing-column", "time_entries.stopped_at"),
    ]
    assert found == expected, render_findings(findings, analysis)

    predicate_file = TIMETRACKER / "db" / "ddl" / "003_time_entries.sql"
    (predicate,) = [
        x
        for x in findings
        if x.file == "db/ddl/003_time_entries.sql"
        and x.code == "missing-column"
        and x.message.startswith("index predicate")
    ]
    assert predicate.line == line_of(predicate_file, "WHERE stopped_at IS NULL")
    (definition,) = [
        x
        for x in findings
        if x.file == "db/ddl/003_time_entries.sql"
        and x.code == "missing-column"
        and x.message.startswith("column")
    ]
    assert definition.line == line_of(predicate_file, "stopped_at  TIMESTAMPTZ")
    (id_key,) = [
        x for x in findings if x.code == "key-type" and x.object == "public.time_entries.id"
    ]
    assert id_key.line == line_of(predicate_file, "id          UUID PRIMARY KEY")
    assert id_key.message == "time_entries.id is uuid here but integer in the schema"
    # the DO blocks and CREATE EXTENSION are listed as not analysed
    assert sorted(n.location for n in analysis.not_analysed) == [
        "db/ddl/000_extensions.sql:4",
        "db/ddl/000_extensions.sql:6",
        "db/migrations/2024_03_04_active_timer.sql:3",
    ]
