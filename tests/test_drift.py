"""Live drift: ``live_drift`` (``--schemaguard-live-dsn``) and ``schemaguard-drift`` against a
database migrated from a fixture project and changed by hand; read-only, proven on the
server's catalog."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from defects import copy_project
from sqlalchemy.engine import make_url

from pytest_schemaguard.drift.check import drift_target
from pytest_schemaguard.drift.live import (
    APPLICATION_NAME,
    LiveSchema,
    connect_live,
)
from pytest_schemaguard.migrations.history import History, RevisionInfo
from pytest_schemaguard.server import Database, PostgresServer
from pytest_schemaguard.snapshot.model import Snapshot

STAMPED = "c47d19e2f035"  # newsbot's third revision; its head is e61b7c3a0f58
PASSWORD = "Live-Secret-7q"  # must never be printed
DRIFT_LINES = [
    "  column public.articles.notes: present only in live",
    "  column public.pending_publications.created_at: default now() → clock_timestamp()",
    "  index public.pending_publications.ix_pending_publications_article_id: "
    f"present only in migrations at {STAMPED}",
]
HAND_CHANGES = [
    "DROP INDEX ix_pending_publications_article_id",
    "ALTER TABLE articles ADD COLUMN notes text",
    "ALTER TABLE pending_publications ALTER COLUMN created_at SET DEFAULT clock_timestamp()",
]

# The catalog rows of the live database that any DDL, lock-taking maintenance or write would
# change (xmin: the transaction that last wrote the row).
CATALOG = {
    "pg_class": "SELECT c.oid, c.xmin::text, c.relname, c.relkind, c.relfilenode, c.relnatts "
    "FROM pg_class c ORDER BY c.oid",
    "pg_attribute": "SELECT attrelid, attnum, xmin::text, attname, atttypid, attnotnull, "
    "atthasdef, attisdropped FROM pg_attribute ORDER BY attrelid, attnum",
    "pg_constraint": "SELECT oid, xmin::text, conname, contype, conrelid FROM pg_constraint "
    "ORDER BY oid",
    "pg_index": "SELECT indexrelid, xmin::text, indrelid, indisvalid, indisready FROM pg_index "
    "ORDER BY indexrelid",
    "pg_attrdef": "SELECT oid, xmin::text, adrelid, adnum, pg_get_expr(adbin, adrelid) "
    "FROM pg_attrdef ORDER BY oid",
}


def catalog(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CATALOG.items()}


def our_sessions(postgres: PostgresServer, db: Database) -> list[tuple[Any, ...]]:
    """Sessions of pytest-schemaguard on the live database, and locks anyone holds there."""
    with postgres.admin() as conn:
        deadline = time.monotonic() + 10
        while True:
            rows = conn.execute(
                "SELECT 'session', pid::text, state FROM pg_stat_activity "
                "WHERE datname = %(db)s AND application_name = %(app)s "
                "UNION ALL SELECT 'lock', l.pid::text, l.mode FROM pg_locks l "
                "JOIN pg_database d ON d.oid = l.database "
                "WHERE d.datname = %(db)s AND l.pid <> pg_backend_pid()",
                {"db": db.name, "app": APPLICATION_NAME},
            ).fetchall()
            # a backend ends a moment after its client has gone
            if not rows or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


def live_url(postgres: PostgresServer, db: Database) -> str:
    """The database's URL with a password in it (the suite's server ignores it when it
    trusts local connections; a server with a password gets its own)."""
    url = make_url(db.url).set(drivername="postgresql", password=postgres.password or PASSWORD)
    return url.render_as_string(hide_password=False)


def migrate(project: Path, db: Database, revision: str) -> None:
    code = (
        "import sys; from alembic.config import Config; from alembic import command; "
        "cfg = Config('alembic.ini'); "
        "cfg.set_main_option('sqlalchemy.url', sys.argv[1].replace('%', '%%')); "
        "command.upgrade(cfg, sys.argv[2])"
    )
    subprocess.run(
        [sys.executable, "-c", code, db.url, revision],
        cwd=project,
        check=True,
        capture_output=True,
        env={**os.environ, "DATABASE_URL": db.url},  # for an env.py that reads it
    )


@pytest.fixture
def newsbot(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = copy_project("newsbot", pytester.path)
    monkeypatch.chdir(project)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return project


@pytest.fixture
def live_db(schemaguard_postgres: PostgresServer) -> Iterator[Database]:
    db = schemaguard_postgres.create_database()
    try:
        yield db
    finally:
        schemaguard_postgres.drop_database(db)


def drift_command(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("schemaguard-drift")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=300, check=False
    )


def run_live_drift(pytester: pytest.Pytester, dsn: str, live: str) -> pytest.RunResult:
    """``pytest --schemaguard -k live_drift`` in the project, scratch databases on ``dsn``."""
    return pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--schemaguard",
        f"--schemaguard-dsn={dsn}",
        f"--schemaguard-live-dsn={live}",
        "-k",
        "live_drift",
    )


def test_live_drift_reports_the_hand_changes_at_the_stamped_revision_and_changes_nothing(
    pytester: pytest.Pytester,
    newsbot: Path,
    schemaguard_postgres: PostgresServer,
    inner_dsn: str,
    live_db: Database,
) -> None:
    migrate(newsbot, live_db, STAMPED)
    with psycopg.connect(live_db.dsn, autocommit=True) as conn:
        for statement in HAND_CHANGES:
            conn.execute(statement)
    url = live_url(schemaguard_postgres, live_db)
    before = catalog(live_db)

    result = run_live_drift(pytester, inner_dsn, url)

    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    title = (
        f"live_drift: the live database postgresql://*:***@*/{live_db.name} against the "
        f"migrations at {STAMPED}"
    )
    block = [
        title,
        f"the live database is stamped at {STAMPED} (create digests and pending publications); "
        "the project's head is e61b7c3a0f58 (dlq retry backoff)",
        f"not compared with the models: they describe head, the live database is at {STAMPED} "
        "(create digests and pending publications)",
        f"the live database differs from the schema the migrations build at {STAMPED}:",
        *DRIFT_LINES,
        f"3 schema differences between migrations at {STAMPED} and live: 1 only in "
        f"migrations at {STAMPED}, 1 only in live, 1 changed",
    ]
    result.stdout.fnmatch_lines(block, consecutive=True)
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("::error*")  # annotations only under GitHub Actions
    assert PASSWORD not in result.stdout.str() + result.stderr.str()
    # exactly those: no other difference line
    differences = [line for line in result.stdout.lines if line.startswith("  ") and ": " in line]
    assert differences == DRIFT_LINES

    # nothing of the live database changed, and no session or lock of ours is left there
    assert catalog(live_db) == before
    assert our_sessions(schemaguard_postgres, live_db) == []

    # the command prints the same block and exits 1
    run = drift_command("--live-dsn", url, "--project", str(newsbot), "--dsn", inner_dsn)
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert pytest.LineMatcher(lines).fnmatch_lines(block, consecutive=True) is None
    assert [line for line in lines if line.startswith("  ")] == DRIFT_LINES
    assert PASSWORD not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert catalog(live_db) == before
    assert our_sessions(schemaguard_postgres, live_db) == []


CONFIGURE = (
    "    context.configure(connection=connection, target_metadata=target_metadata, "
    "compare_type=True)\n"
)


def set_version_table(project: Path, options: str, before: str = "") -> None:
    """Make the project's env.py configure its own version table (``options`` added to
    ``context.configure``; ``before``: code run on the connection first)."""
    env = project / "migrations" / "env.py"
    text = env.read_text()
    assert CONFIGURE in text
    configure = CONFIGURE.replace("compare_type=True", f"compare_type=True, {options}")
    env.write_text(text.replace(CONFIGURE, before + configure))


def stamp_block(name: str) -> list[str]:
    """What live_drift prints for the hand changes at STAMPED (the database named ``name``)."""
    return [
        f"live_drift: the live database postgresql://*:***@*/{name} against the "
        f"migrations at {STAMPED}",
        f"the live database is stamped at {STAMPED} (create digests and pending publications); "
        "the project's head is e61b7c3a0f58 (dlq retry backoff)",
        f"not compared with the models: they describe head, the live database is at {STAMPED} "
        "(create digests and pending publications)",
        f"the live database differs from the schema the migrations build at {STAMPED}:",
        *DRIFT_LINES,
        f"3 schema differences between migrations at {STAMPED} and live: 1 only in "
        f"migrations at {STAMPED}, 1 only in live, 1 changed",
    ]


def test_live_drift_reads_the_version_table_env_py_configures(
    pytester: pytest.Pytester,
    newsbot: Path,
    schemaguard_postgres: PostgresServer,
    inner_dsn: str,
    live_db: Database,
) -> None:
    # version_table="schema_version": the stamp is read there (not "never stamped", compared
    # with head), and the table is no schema difference
    set_version_table(newsbot, 'version_table="schema_version"')
    migrate(newsbot, live_db, STAMPED)
    with psycopg.connect(live_db.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT version_num FROM public.schema_version").fetchall() == [
            (STAMPED,)
        ]
        for statement in HAND_CHANGES:
            conn.execute(statement)
    url = live_url(schemaguard_postgres, live_db)
    before = catalog(live_db)

    result = run_live_drift(pytester, inner_dsn, url)

    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(stamp_block(live_db.name), consecutive=True)
    differences = [line for line in result.stdout.lines if line.startswith("  ") and ": " in line]
    assert differences == DRIFT_LINES
    result.stdout.no_fnmatch_line("*Traceback*")
    assert catalog(live_db) == before
    assert our_sessions(schemaguard_postgres, live_db) == []


def test_schemaguard_drift_reads_the_version_table_in_its_configured_schema(
    newsbot: Path, schemaguard_postgres: PostgresServer, inner_dsn: str, live_db: Database
) -> None:
    # meta.schema_version (env.py makes the schema); a public.alembic_version left over from
    # before, stamped at head, is not the project's
    set_version_table(
        newsbot,
        'version_table="schema_version", version_table_schema="meta"',
        '    connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS meta")\n'
        "    connection.commit()\n",
    )
    migrate(newsbot, live_db, STAMPED)
    with psycopg.connect(live_db.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT version_num FROM meta.schema_version").fetchall() == [
            (STAMPED,)
        ]
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('e61b7c3a0f58')")
        for statement in HAND_CHANGES:
            conn.execute(statement)
    url = live_url(schemaguard_postgres, live_db)
    before = catalog(live_db)

    run = drift_command("--live-dsn", url, "--project", str(newsbot), "--dsn", inner_dsn)

    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert pytest.LineMatcher(lines).fnmatch_lines(stamp_block(live_db.name)) is None
    assert [line for line in lines if line.startswith("  ")] == DRIFT_LINES
    assert "Traceback" not in run.stderr
    assert catalog(live_db) == before
    assert our_sessions(schemaguard_postgres, live_db) == []


def test_an_env_py_that_fails_on_the_scratch_server_is_not_compared(
    newsbot: Path, schemaguard_postgres: PostgresServer, inner_dsn: str, live_db: Database
) -> None:
    # env.py runs (to learn its version table) on a scratch database only: its error is the
    # reason nothing was compared
    set_version_table(
        newsbot, 'version_table="schema_version"', '    raise RuntimeError("no settings")\n'
    )
    before = catalog(live_db)
    run = drift_command(
        "--live-dsn",
        live_url(schemaguard_postgres, live_db),
        "--project",
        str(newsbot),
        "--dsn",
        inner_dsn,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout == ""
    expected = [
        "schemaguard-drift: error: running env.py to learn its version table failed: env.py failed",
        "file: migrations/env.py",
        '*raise RuntimeError("no settings")',
        "error:",
        "    RuntimeError: no settings",
    ]
    matcher = pytest.LineMatcher(run.stderr.splitlines())
    assert matcher.fnmatch_lines(expected, consecutive=True) is None
    assert "Traceback" not in run.stderr
    assert PASSWORD not in run.stderr
    assert catalog(live_db) == before
    assert our_sessions(schemaguard_postgres, live_db) == []


@pytest.mark.parametrize("own_server", [False, True], ids=["dsn", "own-server"])
def test_schemaguard_drift_exits_0_on_an_unchanged_database(
    newsbot: Path,
    schemaguard_postgres: PostgresServer,
    inner_dsn: str,
    live_db: Database,
    own_server: bool,
) -> None:
    migrate(newsbot, live_db, "head")
    url = live_url(schemaguard_postgres, live_db)
    # without --dsn the command starts (and stops) a throwaway server of its own
    scratch = [] if own_server else ["--dsn", inner_dsn]
    run = drift_command("--live-dsn", url, "--project", str(newsbot), *scratch)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == [
        f"live_drift: the live database {make_url(url).render_as_string()} against the "
        "migrations at e61b7c3a0f58",
        "the live database is stamped at e61b7c3a0f58 (dlq retry backoff) (the project's head)",
        "no drift",
    ]
    assert PASSWORD not in run.stdout + run.stderr


def test_a_live_database_in_sql_ascii_is_read(
    newsbot: Path, schemaguard_postgres: PostgresServer, inner_dsn: str
) -> None:
    """A live database in SQL_ASCII (made in the C locale without an encoding), where psycopg
    returns text as bytes: its schema is read as any other's (it failed with a TypeError)."""
    name = schemaguard_postgres.new_name("ascii")
    with schemaguard_postgres.admin() as conn:
        conn.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' TEMPLATE template0 "
            "LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    live = Database(name, schemaguard_postgres._url(name), schemaguard_postgres._dsn(name))
    try:
        # (SQLAlchemy on psycopg needs text there too: the project's own migrations ask for it)
        utf8 = Database(name, f"{live.url}?client_encoding=utf8", live.dsn)
        migrate(newsbot, utf8, "head")
        utf8.dispose()
        with psycopg.connect(live.dsn) as conn:
            assert conn.execute("SHOW server_encoding").fetchone() == (b"SQL_ASCII",)
        url = live_url(schemaguard_postgres, live)
        run = drift_command("--live-dsn", url, "--project", str(newsbot), "--dsn", inner_dsn)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.splitlines()[-1] == "no drift"
    finally:
        live.dispose()
        with schemaguard_postgres.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_live_connection_is_read_only_with_short_timeouts(
    schemaguard_postgres: PostgresServer, live_db: Database
) -> None:
    conn = connect_live(live_url(schemaguard_postgres, live_db))
    try:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in (
                "default_transaction_read_only",
                "transaction_read_only",
                "statement_timeout",
                "lock_timeout",
                "application_name",
            )
        }
        conn.rollback()
        assert settings == {
            "default_transaction_read_only": "on",
            "transaction_read_only": "on",
            "statement_timeout": "30s",
            "lock_timeout": "1s",
            "application_name": APPLICATION_NAME,
        }
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE t (id int)")
    finally:
        conn.close()


def test_drift_command_usage_errors_exit_2(tmp_path: Path) -> None:
    run = drift_command("--project", str(tmp_path))
    assert run.returncode == 2
    assert "--live-dsn is required" in run.stderr
    run = drift_command("--live-dsn", f"mysql://u:{PASSWORD}@h/db", "--project", str(tmp_path))
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "schemaguard-drift: error: --schemaguard-live-dsn = 'mysql://u:***@h/db' is not a "
        "PostgreSQL URL: expected postgresql://user:password@host:port/database"
    ]


def test_live_dsn_that_is_not_postgresql_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--schemaguard", f"--schemaguard-live-dsn=mysql://u:{PASSWORD}@h/db"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: schemaguard: --schemaguard-live-dsn = 'mysql://u:***@h/db' is not a "
            "PostgreSQL URL*"
        ]
    )
    assert PASSWORD not in result.stdout.str() + result.stderr.str()


# ------------------------------------------------------------------------------ the stamp

HISTORY = History.build(
    [
        RevisionInfo("a1", (), message="first"),
        RevisionInfo("b2", ("a1",), message="second"),
    ]
)


def live(
    stamped: tuple[str, ...],
    table: str | None = "public.alembic_version",
    looked_for: str = "alembic_version",
) -> LiveSchema:
    return LiveSchema(Snapshot(), stamped, table, "17.0", "postgresql://u:***@h/db", looked_for)


@pytest.mark.parametrize(
    ("schema", "ref", "line", "failure"),
    [
        (
            live((), None),
            "head",
            "the live database has no alembic_version table (never stamped): compared with the "
            "migrations at head, b2 (second)",
            False,
        ),
        (
            live((), None, "meta.schema_version"),
            "head",
            "the live database has no meta.schema_version table (never stamped): compared with "
            "the migrations at head, b2 (second)",
            False,
        ),
        (
            live(()),
            "head",
            "the live database has an empty public.alembic_version (never stamped): compared "
            "with the migrations at head, b2 (second)",
            False,
        ),
        (
            live(("a1",)),
            "a1",
            "the live database is stamped at a1 (first); the project's head is b2 (second)",
            False,
        ),
        (
            live(("b2",)),
            "b2",
            "the live database is stamped at b2 (second) (the project's head)",
            False,
        ),
        (
            live(("c3",)),
            "head",
            "the live database is stamped at c3, which this project's migrations do not have: it "
            "is ahead of the project's head b2 (second) (a newer release was deployed there?) or "
            "on a branch this project does not have; compared with the migrations at head",
            True,
        ),
    ],
    ids=["no-table", "no-configured-table", "empty-table", "behind-head", "at-head", "unknown"],
)
def test_the_stamp_decides_what_the_live_database_is_compared_with(
    schema: LiveSchema, ref: str, line: str, failure: bool
) -> None:
    target = drift_target(schema, HISTORY)
    assert (target.ref, target.lines, target.failure) == (ref, [line], failure)


def test_a_live_database_that_cannot_be_reached_is_not_compared(newsbot: Path) -> None:
    run = drift_command(
        "--live-dsn", f"postgresql://app:{PASSWORD}@127.0.0.1:1/prod", "--project", str(newsbot)
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.startswith(
        "schemaguard-drift: error: cannot connect to the live database "
        "postgresql://app:***@127.0.0.1:1/prod: "
    )
    assert len(run.stderr.splitlines()) == 1
    assert PASSWORD not in run.stderr


def test_a_live_database_at_head_is_compared_with_the_models_and_the_baseline_too(
    pytester: pytest.Pytester,
    schemaguard_postgres: PostgresServer,
    inner_dsn: str,
    live_db: Database,
) -> None:
    project = copy_project("timetracker", pytester.path)
    migrate(project, live_db, "head")
    with psycopg.connect(live_db.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE tasks ADD COLUMN estimate interval")
    url = live_url(schemaguard_postgres, live_db)
    run = drift_command("--live-dsn", url, "--project", str(project), "--dsn", inner_dsn)
    assert run.returncode == 1, run.stderr
    head = "b3e8f6d21c90"
    added = "  column public.tasks.estimate: present only in live"
    assert run.stdout.splitlines() == [
        f"live_drift: the live database {make_url(url).render_as_string()} against the "
        f"migrations at {head}",
        f"the live database is stamped at {head} (tasks full text search) (the project's head)",
        f"the live database differs from the schema the migrations build at {head}:",
        added,
        f"1 schema difference between migrations at {head} and live: 1 only in live",
        "the live database differs from the schema the models build:",
        added,
        "1 schema difference between models and live: 1 only in live",
        "the live database differs from the baseline reports/schema_baseline_legacy.sql:",
        added,
        "1 schema difference between baseline and live: 1 only in live",
    ]
    assert PASSWORD not in run.stdout + run.stderr
