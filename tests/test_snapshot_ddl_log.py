"""Reads that follow the DDL log (:mod:`pytest_schemaguard.snapshot.introspect.ddl_log`): the
relations the logged commands touched are printed, and nothing else is read; whenever the log
cannot account for a change (a catalog written outside a logged command, a rename, a rollback,
another session), the read computes fingerprints as without it.  Every read here is compared
with a full read of the same catalog (``SCHEMAGUARD_CHECK_READS=1``)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import psycopg
import pytest
from migration_projects import ENV_CONNECTION, Rev, run_checks, write_project
from test_snapshot_digest import CHANGES, REFERENCES
from test_snapshot_digest import database as database  # the same schema, in a database of its own

from pytest_schemaguard.server import Database
from pytest_schemaguard.snapshot.introspect import ddl_log, delta, read_schema, take_snapshot
from pytest_schemaguard.snapshot.introspect.delta import CHECK_READS_ENV
from pytest_schemaguard.snapshot.introspect.queries import DEFAULT_EXCLUDED_TABLES

#: Changes the log cannot vouch for: what they rename is printed by relations it does not name.
NOT_LOGGED = {"enum label order", "column renamed", "domain check"}

#: Of the references, the one that renames nothing: the log names the sequence, and its owner
#: is printed with it.
LOGGED_REFERENCES = {"owner of a sequence changed"}

_EVENT_TRIGGERS = "SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'schemaguard%%'"


@pytest.fixture(autouse=True)
def checked_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECK_READS_ENV, "1")


@pytest.fixture
def conn(database: Database) -> Iterator[psycopg.Connection]:
    """A connection with the log installed, in a transaction rolled back afterwards (at
    REPEATABLE READ, so that other tests' transactions ending meanwhile do not matter)."""
    with psycopg.connect(database.dsn) as connection:
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert ddl_log.install(connection)
        yield connection
        connection.rollback()


def _read_after(conn: psycopg.Connection, change: str, setup: str = "") -> tuple[bool, bool]:
    """(whether the read after ``change`` followed the log, whether it saw a change)."""
    if setup:
        conn.execute(setup)
    before = read_schema(conn)
    conn.execute(change)
    after = read_schema(conn, since=before)
    assert after.snapshot == take_snapshot(conn)
    return after.catalog.logged, after.snapshot != before.snapshot


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_logged_change_prints_only_what_the_log_names(
    conn: psycopg.Connection, name: str
) -> None:
    logged, changed = _read_after(conn, CHANGES[name])
    assert changed
    assert logged == (name not in NOT_LOGGED)


@pytest.mark.parametrize("name", list(REFERENCES))
def test_a_renamed_object_is_printed_again_where_it_is_named(
    conn: psycopg.Connection, name: str
) -> None:
    setup, change, _printed_again = REFERENCES[name]
    logged, changed = _read_after(conn, change, setup)
    assert changed
    # a rename: the fingerprints of every relation find what names it
    assert logged == (name in LOGGED_REFERENCES)


def test_the_logged_reads_of_a_chain_of_steps_follow_each_other(conn: psycopg.Connection) -> None:
    reading = read_schema(conn)
    steps = [
        "CREATE TABLE extra (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "t_id integer REFERENCES t, note text DEFAULT 'n')",
        "CREATE INDEX ix_extra_note ON extra (note)",
        "ALTER TABLE extra ALTER COLUMN id SET INCREMENT BY 5",  # the identity's sequence
        "COMMENT ON CONSTRAINT extra_pkey ON extra IS 'key'",
        "CREATE TYPE colour AS ENUM ('red'); ALTER TABLE extra ADD COLUMN c colour",
        "ALTER TABLE extra DROP COLUMN c; DROP TYPE colour",
        "DROP INDEX ix_extra_note",
        "ALTER TABLE extra DROP CONSTRAINT extra_t_id_fkey",
        "DROP TABLE extra",
    ]
    for step in steps:
        conn.execute(step)
        after = read_schema(conn, since=reading)
        assert after.catalog.logged, step
        assert after.snapshot == take_snapshot(conn)
        reading = after


@pytest.mark.parametrize("mode", ["default", "SET", "SET LOCAL"])
def test_a_logged_read_gives_the_join_settings_back(conn: psycopg.Connection, mode: str) -> None:
    """The catalog query of a logged read is planned with hash and merge joins, sequential
    scans and JIT off; the session's own values (the defaults, or its own) are given back."""
    if mode != "default":
        conn.execute(f"{mode} enable_hashjoin = off")
        conn.execute(f"{mode} enable_seqscan = off")
        conn.execute(f"{mode} jit = on")

    def settings() -> list[str]:
        names = ("enable_hashjoin", "enable_mergejoin", "enable_seqscan", "jit")
        return [conn.execute(f"SHOW {name}").fetchone()[0] for name in names]

    before = settings()
    reading = read_schema(conn)
    assert settings() == before
    for step in ("CREATE TABLE extra (id integer PRIMARY KEY)", "DROP TABLE extra"):
        conn.execute(step)
        reading = read_schema(conn, since=reading)
        assert reading.catalog.logged, step
        assert reading.printed is not None
        assert settings() == before
    # (the suite's server runs with jit off, as the plugin's own servers do)
    assert before == (
        ["on", "on", "on", "off"] if mode == "default" else ["off", "on", "off", "on"]
    )


def test_every_kind_of_read_gives_the_sessions_settings_back(conn: psycopg.Connection) -> None:
    """A read's first round trip pins the settings its catalog query runs under; whatever the
    read then finds (nothing changed, a change the log names, one it cannot vouch for, a
    change to the sections that are not per relation), the session's own are given back."""
    conn.execute("SET LOCAL search_path = public, pg_temp")
    conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    conn.execute("SET LOCAL enable_hashjoin = off")

    def settings() -> list[str]:
        names = ("search_path", "plan_cache_mode", "jit", "enable_hashjoin", "enable_seqscan")
        return [conn.execute(f"SHOW {name}").fetchone()[0] for name in names]

    before = settings()
    assert before == ["public, pg_temp", "force_custom_plan", "off", "off", "on"]
    reading = read_schema(conn)
    assert settings() == before
    # reads with nothing changed since: one that finds so in its first round trip (the server's
    # WAL moving meanwhile, which other sessions may cause, makes it read on instead)
    for _ in range(100):
        reading = read_schema(conn, since=reading)
        assert settings() == before
        if reading.printed == 0 and not reading.catalog.logged:
            break
    else:
        pytest.fail("no read found that nothing could have changed")
    kinds = {
        "a logged change": ("CREATE TABLE extra (id integer PRIMARY KEY)", True),
        "a change the log cannot vouch for": (CHANGES["column renamed"], False),
        "a new type": ("CREATE TYPE colour AS ENUM ('red')", True),
    }
    for kind, (change, logged) in kinds.items():
        conn.execute(change)
        after = read_schema(conn, since=reading)
        assert settings() == before, kind
        assert after.snapshot == take_snapshot(conn), kind
        assert after.catalog.logged == logged, kind
        reading = after


def test_an_error_of_a_statement_run_through_the_protocol_is_raised(
    conn: psycopg.Connection,
) -> None:
    with contextlib.ExitStack() as cursors:
        batch = delta._Batch(conn, cursors)
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            batch.run_prepared("schemaguard_no_such_statement", ["1"])


def test_a_session_with_jit_on_does_not_compile_the_catalog_queries(
    conn: psycopg.Connection,
) -> None:
    """The catalog queries are large, and a logged read's is costed with sequential scans
    disabled: on a server with JIT, each run compiled it for seconds.  Each read turns JIT off
    for its statements, so the plans the session keeps for them have none."""
    conn.execute("SET jit = on")
    conn.execute("SET jit_above_cost = 0")
    reading = read_schema(conn)
    for step in ("CREATE TABLE extra (id integer PRIMARY KEY)", "DROP TABLE extra"):
        conn.execute(step)
        reading = read_schema(conn, since=reading)
        assert reading.catalog.logged, step
    assert conn.execute("SHOW jit").fetchone() == ("on",)
    name = delta.statement_name(
        delta.logged_query(conn.info.server_version, tuple(DEFAULT_EXCLUDED_TABLES))
    )
    # The plan the logged read made and keeps (replanned under another search_path)
    conn.execute("SET LOCAL search_path = pg_catalog")
    conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    ((plan,),) = conn.execute(
        f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}('{{}}', '{{}}', '{{}}')"
    ).fetchall()
    if conn.execute("SELECT pg_jit_available()").fetchone() == (True,):
        # a plan made with JIT on would show it (this server can compile)
        assert "JIT" not in plan[0]
        ((fresh,),) = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM pg_catalog.pg_class"
        ).fetchall()
        assert "JIT" in fresh[0]


@pytest.mark.parametrize(
    "change",
    [
        "CREATE TYPE pair AS (a integer, b text)",
        "CREATE TYPE pair AS (a integer); CREATE TABLE typed OF pair",
        "CREATE TYPE pair AS (a integer); DROP TYPE pair",
    ],
    ids=["created", "a-typed-table", "created-and-dropped"],
)
def test_a_composite_type_is_a_relation_the_log_names(
    conn: psycopg.Connection, change: str
) -> None:
    logged, _changed = _read_after(conn, change)
    assert logged


def test_a_relation_the_log_does_not_name_makes_the_read_compute_fingerprints(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a gap in what the log names, made on purpose: composite types are not taken for relations
    monkeypatch.setattr(delta, "_PG_TYPE", "no such catalog")
    logged, changed = _read_after(conn, "CREATE TYPE pair AS (a integer, b text)")
    assert changed
    assert not logged  # the relations there are now are not those of the log: fingerprints


def test_a_detached_partition_is_printed_again(conn: psycopg.Connection) -> None:
    setup = (
        "CREATE TABLE pt (k integer) PARTITION BY RANGE (k); "
        "CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (10)"
    )
    # DETACH names only the parent, and the catalog no longer links the two
    logged, changed = _read_after(conn, "ALTER TABLE pt DETACH PARTITION pt1", setup)
    assert logged and changed


def test_a_column_added_to_a_parent_is_printed_in_its_children(conn: psycopg.Connection) -> None:
    setup = "CREATE TABLE base (id integer); CREATE TABLE heir (n integer) INHERITS (base)"
    logged, changed = _read_after(conn, "ALTER TABLE base ADD COLUMN z integer", setup)
    assert logged and changed


@pytest.mark.parametrize(
    "change",
    [
        # a catalog written directly, between two logged commands and after the last one
        "ALTER TABLE t ADD COLUMN z integer; UPDATE pg_attribute SET attnotnull = true "
        "WHERE attrelid = 'child'::regclass AND attname = 't_id'; CREATE INDEX ON t (z)",
        "ALTER TABLE t ADD COLUMN z integer; UPDATE pg_attribute SET attnotnull = true "
        "WHERE attrelid = 'child'::regclass AND attname = 't_id'",
        # DDL while the triggers do not fire
        "SET LOCAL session_replication_role = replica; ALTER TABLE child ADD COLUMN z integer; "
        "SET LOCAL session_replication_role = origin; ALTER TABLE t ADD COLUMN z integer",
        # a command that fires no trigger but writes the catalog
        "ALTER TABLE t ADD COLUMN z integer; TRUNCATE child; ALTER TABLE child ADD COLUMN z int",
        # a command that names no object
        "GRANT SELECT ON child TO PUBLIC",
    ],
    ids=["catalog-between", "catalog-after", "replica-role", "truncate", "grant"],
)
def test_a_change_outside_the_log_makes_the_read_compute_fingerprints(
    conn: psycopg.Connection, change: str
) -> None:
    logged, changed = _read_after(conn, change)
    assert changed or change.startswith("GRANT")
    assert not logged


def test_a_rollback_to_a_savepoint_makes_the_read_compute_fingerprints(
    conn: psycopg.Connection,
) -> None:
    before = read_schema(conn)
    conn.execute("SAVEPOINT s")
    conn.execute(CHANGES["column added"])
    conn.execute("ROLLBACK TO SAVEPOINT s")
    conn.execute(CHANGES["column default"])
    after = read_schema(conn, since=before)
    assert not after.catalog.logged  # the settings went back, the count of writes did not
    assert after.snapshot == take_snapshot(conn)


def test_another_sessions_commit_makes_the_read_compute_fingerprints(database: Database) -> None:
    with (
        psycopg.connect(database.dsn) as one,
        psycopg.connect(database.dsn, autocommit=True) as two,
    ):
        assert ddl_log.install(one)  # READ COMMITTED: other sessions' commits are seen
        before = read_schema(one)
        two.execute("COMMENT ON TABLE child IS 'from another session'")
        try:
            one.execute(CHANGES["column default"])
            after = read_schema(one, since=before)
            assert not after.catalog.logged
            assert {t.name: t.comment for t in after.snapshot.tables}["child"] == (
                "from another session"
            )
        finally:
            one.rollback()
            two.execute("COMMENT ON TABLE child IS NULL")


def test_removing_the_log_leaves_no_trigger(conn: psycopg.Connection) -> None:
    assert conn.execute(_EVENT_TRIGGERS).fetchone() == (3,)
    ddl_log.remove(conn)
    assert conn.execute(_EVENT_TRIGGERS).fetchone() == (0,)
    conn.execute(CHANGES["column default"])  # the transaction goes on


def test_only_a_superuser_installs_the_log(database: Database) -> None:
    with psycopg.connect(database.dsn) as conn:
        conn.execute("CREATE ROLE schemaguard_plain NOSUPERUSER")
        conn.execute("SET LOCAL ROLE schemaguard_plain")
        assert not ddl_log.install(conn)
        conn.execute("RESET ROLE")
        assert conn.execute(_EVENT_TRIGGERS).fetchone() == (0,)
        conn.rollback()


def test_a_log_that_cannot_be_installed_leaves_the_transaction_as_it_was(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = dict(ddl_log._TRIGGERS)
    broken["schemaguard_ddl_drop"] = ("sql_drop", "BEGIN not plpgsql at all; END")
    monkeypatch.setattr(ddl_log, "_TRIGGERS", broken)
    with psycopg.connect(database.dsn) as conn:
        conn.execute("CREATE TABLE made_before (id integer)")
        assert not ddl_log.install(conn)
        assert conn.execute(_EVENT_TRIGGERS).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM made_before").fetchone() == (0,)
        conn.rollback()


def test_the_log_can_be_turned_off(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ddl_log.DDL_LOG_ENV, "0")
    with psycopg.connect(database.dsn) as conn:
        assert not ddl_log.install(conn)
        before = read_schema(conn)
        conn.execute(CHANGES["column default"])
        assert not read_schema(conn, since=before).catalog.logged
        conn.rollback()


def _revisions_watching_the_log(installed: bool) -> list[Rev]:
    """Five revisions adding a column each; the fifth fails its upgrade unless the DDL log is
    ``installed`` at its first and second upgrade and gone at the third (the cycle's), or gone
    at every one.  Each upgrade of the fifth takes one more session-level advisory lock, which
    counts them without leaving anything that ends a pass (a setting, a temporary table)."""
    check = (
        'op.execute("DO $$ DECLARE n integer; BEGIN '
        "SELECT count(*) + 1 INTO n FROM pg_locks WHERE locktype = 'advisory' "
        "AND pid = pg_backend_pid() AND classid = 5; "
        "PERFORM pg_advisory_lock(5, n); "
        "IF EXISTS (SELECT FROM pg_event_trigger WHERE evtname LIKE 'schemaguard%') "
        "IS DISTINCT FROM ({} AND n < 3) THEN "
        "RAISE EXCEPTION 'the DDL log is wrong at upgrade % of the fifth revision', n; "
        'END IF; END $$")'
    ).format("true" if installed else "false")
    revisions: list[Rev] = []
    parent = None
    for i in range(5):
        revision = f"{i + 1:012d}"
        upgrade = (
            "op.create_table('t', sa.Column('id', sa.Integer, primary_key=True))"
            if i == 0
            else f"op.add_column('t', sa.Column('c{i}', sa.Integer))"
        )
        downgrade = "op.drop_table('t')" if i == 0 else f"op.drop_column('t', 'c{i}')"
        if i == 4:
            upgrade += "\n" + check
        revisions.append(Rev(revision, parent, f"revision {i + 1}", upgrade, downgrade))
        parent = revision
    return revisions


@pytest.mark.parametrize("per_migration", [False, True], ids=["one-transaction", "per-migration"])
def test_a_pass_keeps_the_log_only_where_reads_can_follow_it(
    pytester: pytest.Pytester, inner_dsn: str, per_migration: bool
) -> None:
    # one transaction: the log is there at the fifth revision's upgrade and at its round trip's
    # second upgrade, and gone at the cycle's (no read follows the cycle's steps); a commit per
    # revision: no read could follow it, and it is gone after the first six reads
    write_project(
        pytester.path,
        _revisions_watching_the_log(installed=not per_migration),
        env=ENV_CONNECTION.format(per_migration=per_migration),
    )
    result = run_checks(pytester, inner_dsn)
    result.assert_outcomes(passed=12)
    result.stdout.no_fnmatch_line("*the DDL log is*")


def test_revisions_replayed_by_a_new_pass_run_without_the_log(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # the third revision's second upgrade fails, which ends the pass; the next pass replays
    # the revisions applied so far without checks, before its first read, so without the log:
    # the second revision sees the log at its first two upgrades, then no more (the replay,
    # the cycle)
    revisions = _revisions_watching_the_log(installed=True)[:4]
    runs = pytester.path / "runs"
    revisions[1] = dataclasses.replace(
        revisions[1],
        upgrade=revisions[1].upgrade
        + "\n"
        + _counted(runs / "2")
        + '\nlogged = op.get_bind().exec_driver_sql("SELECT EXISTS (SELECT FROM pg_event_trigger '
        "WHERE evtname LIKE 'schemaguard%%')\").scalar()"
        + "\nif logged != (n <= 2):"
        + "\n    raise RuntimeError(f'the DDL log is wrong at upgrade {n} of the second revision')",
    )
    revisions[2] = dataclasses.replace(
        revisions[2],
        upgrade=revisions[2].upgrade
        + "\n"
        + _counted(runs / "3")
        + "\nif n == 2:\n    raise RuntimeError('the second upgrade fails')",
    )
    runs.mkdir()
    write_project(pytester.path, revisions, env=ENV_CONNECTION.format(per_migration=False))
    result = run_checks(pytester, inner_dsn, "-rf")
    result.assert_outcomes(passed=9, failed=1)
    result.stdout.fnmatch_lines(["FAILED *roundtrip[000000000003*"])
    result.stdout.no_fnmatch_line("*the DDL log is wrong*")
    assert len((runs / "2").read_text()) == 4  # two in the first pass, the replay, the cycle


def _counted(path: object) -> str:
    """Code counting the runs of an upgrade in a file: ``n`` is this run's number."""
    return (
        f"import pathlib\np = pathlib.Path({str(path)!r})\n"
        "with p.open('a') as f:\n    f.write('x')\nn = len(p.read_text())"
    )


def test_revisions_before_the_first_selected_round_trip_run_without_the_log(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # only the fifth revision's round trip is selected: the four before it are applied without
    # checks and no read follows them, so the log is made only at the read before the fifth
    revisions = _revisions_watching_the_log(installed=True)
    for i in range(4):
        revisions[i] = dataclasses.replace(
            revisions[i], upgrade=revisions[i].upgrade + "\n" + _NO_LOG_YET
        )
    write_project(pytester.path, revisions, env=ENV_CONNECTION.format(per_migration=False))
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip and 000000000005")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*the DDL log is*")


#: Fails a revision's upgrade when the DDL log is there.
_NO_LOG_YET = (
    'op.execute("DO $$ BEGIN IF EXISTS (SELECT FROM pg_event_trigger '
    "WHERE evtname LIKE 'schemaguard%') THEN RAISE EXCEPTION 'the DDL log is there already'; "
    'END IF; END $$")'
)
