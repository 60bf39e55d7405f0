"""Reading a snapshot against a known one (``read_schema(same_as=...)``), as the round trips
do after each downgrade and second upgrade: nothing is built when the catalog is the one the
known snapshot was read from, and any change a snapshot shows is seen.  Reading incrementally
(``read_schema(since=...)``, only the relations whose catalog rows changed are printed again)
gives what a full read gives, whatever changed: an attribute of the relation itself or the name
of something it refers to.

The migration-level proof is at the end: one inner project whose downgrades each leave one
attribute changed, every round trip failing with its usual message."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy
from migration_projects import Rev, run_checks, write_project
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from pytest_schemaguard.migrations.runner import compare_snapshots
from pytest_schemaguard.server import Database, PostgresServer
from pytest_schemaguard.snapshot.introspect import Reading, delta, read_schema, take_snapshot
from pytest_schemaguard.snapshot.introspect.delta import CHECK_READS_ENV, COUNTED_CATALOGS
from pytest_schemaguard.snapshot.introspect.delta import check as check_catalog

SCHEMA = """
CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'the application';
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE t (
    id serial PRIMARY KEY,
    c integer DEFAULT 1 CONSTRAINT ck_c CHECK (c > 0),
    d integer,
    m mood,
    p positive
);
COMMENT ON COLUMN t.d IS 'd';
CREATE INDEX ix_t_c ON t (c) WHERE c > 0;
CREATE TABLE child (id integer PRIMARY KEY, t_id integer CONSTRAINT fk_t REFERENCES t (id));
CREATE SEQUENCE s;
CREATE FUNCTION f() RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW v AS SELECT id, c FROM t;
ALTER TABLE t ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON t USING (c > 0);
"""

#: One change each, of one attribute a snapshot shows.
CHANGES = {
    "column default": "ALTER TABLE t ALTER COLUMN c SET DEFAULT 2",
    "column comment": "COMMENT ON COLUMN t.d IS 'dd'",
    "table comment": "COMMENT ON TABLE t IS 't'",
    "schema comment": "COMMENT ON SCHEMA app IS 'the app'",
    "index predicate": "DROP INDEX ix_t_c; CREATE INDEX ix_t_c ON t (c) WHERE c > 1",
    "enum label order": (
        "ALTER TYPE mood RENAME TO mood_old; CREATE TYPE mood AS ENUM ('sad', 'happy'); "
        "ALTER TABLE t ALTER COLUMN m TYPE mood USING m::text::mood; DROP TYPE mood_old"
    ),
    "constraint deferrability": "ALTER TABLE child ALTER CONSTRAINT fk_t DEFERRABLE",
    "nullability": "ALTER TABLE t ALTER COLUMN d SET NOT NULL",
    "column type": "ALTER TABLE t ALTER COLUMN d TYPE bigint",
    "column renamed": "ALTER TABLE t RENAME COLUMN d TO e",
    "check definition": (
        "ALTER TABLE t DROP CONSTRAINT ck_c; ALTER TABLE t ADD CONSTRAINT ck_c CHECK (c > 1)"
    ),
    "domain check": (
        "ALTER DOMAIN positive DROP CONSTRAINT positive_check; "
        "ALTER DOMAIN positive ADD CONSTRAINT positive_check CHECK (VALUE > 1)"
    ),
    # a domain's constraint: logged as a constraint, read with the types
    "domain check renamed": (
        "ALTER DOMAIN positive RENAME CONSTRAINT positive_check TO positive_ck"
    ),
    "function body": "CREATE OR REPLACE FUNCTION f() RETURNS integer LANGUAGE sql AS 'SELECT 2'",
    "view definition": "CREATE OR REPLACE VIEW v AS SELECT id, c + 0 AS c FROM t",
    "sequence increment": "ALTER SEQUENCE s INCREMENT BY 2",
    "trigger disabled": "ALTER TABLE t DISABLE TRIGGER trg",
    "policy expression": "ALTER POLICY mine ON t USING (c > 1)",
    "column added": "ALTER TABLE t ADD COLUMN z integer",
    "index dropped": "DROP INDEX ix_t_c",
}


#: Changes of something a relation's printed rows name without changing the relation's own
#: catalog rows, each with the relation that must be printed again.
REFERENCES = {
    # name: (set up before the first read, the change, a relation that prints the changed name)
    "referenced table renamed": ("", "ALTER TABLE t RENAME TO t2", "child"),
    "referenced column renamed": ("", "ALTER TABLE t RENAME COLUMN id TO tid", "child"),
    "column of a view renamed": ("", "ALTER TABLE t RENAME COLUMN c TO cc", "v"),
    "type of a column renamed": ("", "ALTER TYPE mood RENAME TO feeling", "t"),
    "domain of a column renamed": ("", "ALTER DOMAIN positive RENAME TO above_zero", "t"),
    "sequence of a default renamed": ("", "ALTER SEQUENCE t_id_seq RENAME TO t_key_seq", "t"),
    "function of a trigger renamed": ("", "ALTER FUNCTION touch() RENAME TO touch2", "t"),
    "function of a default renamed": (
        "ALTER TABLE child ADD COLUMN f integer DEFAULT f()",
        "ALTER FUNCTION f() RENAME TO g",
        "child",
    ),
    "schema of a referenced table renamed": (
        "CREATE TABLE app.parent (id integer PRIMARY KEY); "
        "ALTER TABLE child ADD COLUMN p integer REFERENCES app.parent",
        "ALTER SCHEMA app RENAME TO application",
        "child",
    ),
    "owner of a sequence changed": ("", "ALTER SEQUENCE s OWNED BY t.d", "t"),
    "parent of an inherited table renamed": (
        "CREATE TABLE app.base (id integer); CREATE TABLE heir (n integer) INHERITS (app.base)",
        "ALTER TABLE app.base RENAME TO base2",
        "heir",
    ),
    "parent of a partition renamed": (
        "CREATE TABLE pt (k integer) PARTITION BY RANGE (k); "
        "CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (10)",
        "ALTER TABLE pt RENAME TO pt0",
        "pt1",
    ),
    "role of a policy renamed": (
        "CREATE ROLE schemaguard_reader; CREATE POLICY readers ON t TO schemaguard_reader "
        "USING (true)",
        "ALTER ROLE schemaguard_reader RENAME TO schemaguard_readers",
        "t",
    ),
}


@pytest.fixture(scope="module")
def database(schemaguard_postgres: PostgresServer) -> Iterator[Database]:
    db = schemaguard_postgres.create_database()
    try:
        with psycopg.connect(db.dsn) as conn:
            conn.execute(SCHEMA)
        yield db
    finally:
        schemaguard_postgres.drop_database(db)


@pytest.fixture
def conn(database: Database) -> Iterator[psycopg.Connection]:
    """A connection in a transaction that is rolled back afterwards."""
    with psycopg.connect(database.dsn) as connection:
        yield connection
        connection.rollback()


@pytest.mark.parametrize("change", list(CHANGES.values()), ids=list(CHANGES))
def test_one_changed_attribute_is_always_read(conn: psycopg.Connection, change: str) -> None:
    before = read_schema(conn)
    conn.execute(change)
    after = read_schema(conn, same_as=before)
    assert not after.reused
    assert after.snapshot != before.snapshot
    assert after.snapshot == take_snapshot(conn)
    diff = compare_snapshots(
        before.snapshot, after.snapshot, action="it", expected_name="a", actual_name="b"
    )
    assert diff.errors


@pytest.fixture
def checked_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every incremental read is compared with a full read (a difference raises)."""
    monkeypatch.setenv(CHECK_READS_ENV, "1")


@pytest.mark.usefixtures("checked_reads")
@pytest.mark.parametrize("change", list(CHANGES.values()), ids=list(CHANGES))
def test_an_incremental_read_prints_only_what_changed(
    conn: psycopg.Connection, change: str
) -> None:
    before = read_schema(conn)
    assert before.printed == 5  # every relation (t, child, v and two sequences), the first time
    conn.execute(change)
    after = read_schema(conn, since=before)
    assert after.snapshot == take_snapshot(conn)
    assert after.snapshot != before.snapshot
    if change in (
        CHANGES["schema comment"],
        CHANGES["domain check"],
        CHANGES["domain check renamed"],
        CHANGES["function body"],
    ):
        assert after.printed == 0  # not a relation's: the sections read every time show it
    elif change in (CHANGES["column renamed"], CHANGES["column added"]):
        # t, and v, which prints names of t's columns; child's foreign key and t_id_seq name
        # t.id only, which is as it was
        assert after.printed == 2
    else:
        assert after.printed == 1


@pytest.mark.usefixtures("checked_reads")
@pytest.mark.parametrize(
    "setup,change,printed_again", list(REFERENCES.values()), ids=list(REFERENCES)
)
def test_an_incremental_read_prints_again_what_names_a_renamed_object(
    conn: psycopg.Connection, setup: str, change: str, printed_again: str
) -> None:
    if setup:
        conn.execute(setup)
    before = read_schema(conn)
    conn.execute(change)
    after = read_schema(conn, since=before)
    full = take_snapshot(conn)
    assert after.snapshot == full
    assert after.snapshot != before.snapshot
    names = {t.name for t in full.tables} | {v.name for v in full.views}
    assert printed_again in names


@pytest.mark.usefixtures("checked_reads")
def test_renaming_a_referenced_column_prints_again_what_names_it(
    conn: psycopg.Connection,
) -> None:
    before = read_schema(conn)
    conn.execute("ALTER TABLE t RENAME COLUMN id TO tid")
    after = read_schema(conn, since=before)
    assert after.snapshot == take_snapshot(conn)
    # t, child (its foreign key), v and t_id_seq (owned by the column)
    assert after.printed == 4


@pytest.mark.usefixtures("checked_reads")
def test_settings_that_change_how_values_print_make_a_full_read(
    conn: psycopg.Connection,
) -> None:
    conn.execute("ALTER TABLE t ADD COLUMN born date DEFAULT '2024-03-01'")
    before = read_schema(conn)
    conn.execute("SET LOCAL DateStyle = 'SQL, DMY'")
    after = read_schema(conn, since=before)
    assert after.snapshot == take_snapshot(conn)
    assert after.printed == before.printed  # everything again


def test_checking_reads_catches_a_wrong_incremental_read(conn: psycopg.Connection) -> None:
    # what SCHEMAGUARD_CHECK_READS=1 relies on: a catalog missing one relation's rows differs
    reading = read_schema(conn)
    columns = dict(reading.catalog.rows["columns"])
    columns.pop(next(iter(columns)))
    wrong = dataclasses.replace(reading.catalog, rows={**reading.catalog.rows, "columns": columns})
    with pytest.raises(AssertionError, match=r"differs from a full read in: \['columns'\]"):
        check_catalog(conn, wrong, ("alembic_version",))
    check_catalog(conn, reading.catalog, ("alembic_version",))  # the right one passes


def test_an_incremental_read_needs_the_same_connection(database: Database) -> None:
    with psycopg.connect(database.dsn) as one, psycopg.connect(database.dsn) as two:
        first = read_schema(one)
        other = read_schema(two, since=first)  # another session: everything is read
        assert other.printed == first.printed
        assert read_schema(one, since=first).printed == 0


def _quiet(after: Reading, before: Reading) -> bool:
    """Whether ``after`` was answered by the first statement alone (``before``'s rows)."""
    return after.catalog.rows is before.catalog.rows


def test_a_read_with_nothing_changed_runs_no_catalog_query(conn: psycopg.Connection) -> None:
    # Another transaction ending on the server between two reads (another test's) rightly
    # makes the second compute fingerprints: one quiet read of twenty is enough.
    quiet = 0
    for _ in range(20):
        before = read_schema(conn)
        after = read_schema(conn, since=before)
        assert after.printed == 0
        assert after.snapshot == before.snapshot
        quiet += _quiet(after, before)
    assert quiet


@pytest.mark.usefixtures("checked_reads")
@pytest.mark.parametrize("change", ["column default", "index dropped", "column added"])
def test_a_rollback_to_a_savepoint_taken_before_the_previous_read_is_seen(
    database: Database, conn: psycopg.Connection, change: str
) -> None:
    before = read_schema(conn)
    conn.execute("SAVEPOINT s")
    conn.execute(CHANGES[change])
    with psycopg.connect(database.dsn, autocommit=True) as other:
        # a later transaction id ends: the rollback below then leaves the snapshot as it is
        other.execute("SELECT pg_current_xact_id()")
    inside = read_schema(conn, since=before)
    assert inside.snapshot != before.snapshot
    conn.execute("ROLLBACK TO SAVEPOINT s")
    # this session's write counts and the snapshot are as at the read inside the savepoint:
    # the mark that read set is what the rollback took away
    after = read_schema(conn, since=inside)
    assert not _quiet(after, inside)
    assert after.snapshot == before.snapshot == take_snapshot(conn)


@pytest.mark.usefixtures("checked_reads")
def test_a_change_made_and_rolled_back_after_the_previous_read_is_not_printed(
    conn: psycopg.Connection,
) -> None:
    before = read_schema(conn)
    conn.execute("SAVEPOINT s")
    conn.execute(CHANGES["column added"])
    conn.execute("ROLLBACK TO SAVEPOINT s")
    after = read_schema(conn, since=before)
    assert not _quiet(after, before)  # the rolled-back writes were counted
    assert after.printed == 0  # the rows are the very versions read before
    assert after.snapshot == before.snapshot


@pytest.mark.usefixtures("checked_reads")
@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_a_change_committed_by_another_session_is_read(database: Database, isolation: str) -> None:
    with (
        psycopg.connect(database.dsn) as one,
        psycopg.connect(database.dsn, autocommit=True) as two,
    ):
        one.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        before = read_schema(one)
        two.execute("COMMENT ON TABLE child IS 'from another session'")
        try:
            after = read_schema(one, since=before)
            assert not _quiet(after, before)
            assert after.snapshot == take_snapshot(one)
            comment = {t.name: t.comment for t in after.snapshot.tables}["child"]
            assert comment == (None if isolation == "REPEATABLE READ" else "from another session")
            one.rollback()
            assert read_schema(one, since=after).snapshot == take_snapshot(one)
        finally:
            two.execute("COMMENT ON TABLE child IS NULL")


@pytest.mark.usefixtures("checked_reads")
def test_a_change_committed_after_the_previous_read_is_read_in_the_next_transaction(
    database: Database,
) -> None:
    with psycopg.connect(database.dsn) as conn:
        before = read_schema(conn)
        conn.execute("COMMENT ON TABLE child IS 'committed'")
        conn.commit()  # this session's write counts start again with the next transaction
        try:
            after = read_schema(conn, since=before)
            assert not _quiet(after, before)
            assert {t.name: t.comment for t in after.snapshot.tables}["child"] == "committed"
        finally:
            conn.rollback()
            conn.execute("COMMENT ON TABLE child IS NULL")
            conn.commit()


@pytest.mark.usefixtures("checked_reads")
def test_without_track_counts_every_read_computes_fingerprints(
    conn: psycopg.Connection,
) -> None:
    conn.execute("SET LOCAL track_counts = off")  # no write counts: nothing is taken as quiet
    before = read_schema(conn)
    again = read_schema(conn, since=before)
    assert not _quiet(again, before)
    assert again.printed == 0
    conn.execute(CHANGES["column default"])
    after = read_schema(conn, since=again)
    assert after.printed == 1
    assert after.snapshot == take_snapshot(conn) != before.snapshot


def test_the_catalogs_whose_writes_are_counted_have_the_ids_named(
    conn: psycopg.Connection,
) -> None:
    rows = conn.execute(
        "SELECT relname::text, oid::int FROM pg_class WHERE oid = ANY (%s)",
        [list(COUNTED_CATALOGS.values())],
    ).fetchall()
    assert dict(rows) == COUNTED_CATALOGS


def test_an_unchanged_schema_is_not_built_again(conn: psycopg.Connection) -> None:
    before = read_schema(conn)
    again = read_schema(conn, same_as=before)
    assert again.reused
    assert again.snapshot is before.snapshot
    assert again.catalog.same(before.catalog)


def test_objects_created_and_dropped_again_leave_the_same_documents(
    conn: psycopg.Connection,
) -> None:
    # what most downgrades do: drop what the upgrade created; every other catalog row is
    # untouched, and the rows are read in object-id order, not in the order they lie on disk
    before = read_schema(conn)
    conn.execute(
        "CREATE TYPE colour AS ENUM ('red'); "
        "CREATE TABLE extra (id bigserial PRIMARY KEY, c colour, t_id integer REFERENCES t); "
        "CREATE INDEX ix_extra_c ON extra (c); ALTER TABLE t ADD COLUMN z integer"
    )
    changed = read_schema(conn, same_as=before)
    assert not changed.reused
    conn.execute("ALTER TABLE t DROP COLUMN z; DROP TABLE extra; DROP TYPE colour")
    after = read_schema(conn, same_as=before)
    assert after.reused
    assert after.snapshot is before.snapshot


def test_the_same_schema_rebuilt_is_built_and_compared(conn: psycopg.Connection) -> None:
    # new object ids: other documents, the same snapshot
    before = read_schema(conn)
    conn.execute(CHANGES["check definition"])
    conn.execute(
        "ALTER TABLE t DROP CONSTRAINT ck_c; ALTER TABLE t ADD CONSTRAINT ck_c CHECK (c > 0)"
    )
    after = read_schema(conn, same_as=before)
    assert not after.reused
    assert after.snapshot == before.snapshot


_OURS = "SELECT name FROM pg_prepared_statements WHERE name LIKE 'schemaguard_snapshot_%'"


@pytest.fixture(params=["at the fetch", "at the next statement"])
def failure_seen(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where psycopg reports the failed EXECUTE of a pipeline: when its row is fetched, or
    while a statement sent after it is (the answer was in before that statement)."""
    if request.param == "at the next statement":
        runner = delta._psycopg_runner

        def slow_runner(raw: psycopg.Connection, cursors: contextlib.ExitStack) -> Any:
            run = runner(raw, cursors)

            def slow(sql: str, params: Any = None) -> Any:
                time.sleep(0.02)  # the server answers what was sent before
                return run(sql, params)

            return slow

        monkeypatch.setattr(delta, "_psycopg_runner", slow_runner)


@pytest.mark.usefixtures("checked_reads", "failure_seen")
@pytest.mark.parametrize(
    "deallocate",
    ["DEALLOCATE ALL", "DO $$BEGIN EXECUTE 'DEALLOCATE ALL'; END$$"],
    ids=["through the driver", "in a DO block"],
)
def test_statements_deallocated_between_two_reads_are_prepared_again(
    conn: psycopg.Connection, deallocate: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A read on a session that prepared its statements before runs them straight away, in a
    savepoint; when they are gone, the transaction goes on and nothing before the read is
    undone."""
    before = read_schema(conn)
    quiet = read_schema(conn, since=before)
    prepared = set(conn.execute(_OURS).fetchall())
    assert prepared
    conn.execute(CHANGES["column default"])
    conn.execute(deallocate)
    assert conn.execute(_OURS).fetchall() == []
    after = read_schema(conn, since=quiet, also=("SELECT 42",))
    assert set(conn.execute(_OURS).fetchall()) == prepared
    assert after.printed == 1
    assert after.also == (((42,),),)
    assert after.snapshot == take_snapshot(conn)
    assert after.snapshot != before.snapshot  # the change made before the read is kept
    assert _quiet_soon(conn, after)

    with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
        conn.execute("RELEASE SAVEPOINT schemaguard_read")  # none is left open
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def _quiet_soon(conn: psycopg.Connection, since: Reading) -> bool:
    """Whether a read after ``since`` is answered by the first statement alone within twenty
    tries: another transaction ending on the server between two reads (another test's, under
    xdist) rightly makes one compute fingerprints (see the test above)."""
    for _ in range(20):
        following = read_schema(conn, since=since)
        if _quiet(following, since):
            return True
        since = following
    return False


def test_a_search_path_that_needs_quoting_is_given_back(conn: psycopg.Connection) -> None:
    conn.execute("""CREATE SCHEMA "it's \\ here" """)
    conn.execute("""SET search_path = "it's \\ here", app, public""")
    (path,) = conn.execute("SHOW search_path").fetchone()
    before = read_schema(conn)
    conn.execute(CHANGES["column default"])
    after = read_schema(conn, since=before)
    assert after.printed == 1
    assert conn.execute("SHOW search_path").fetchone() == (path,)
    assert conn.execute("SHOW plan_cache_mode").fetchone() == ("auto",)


def test_also_runs_with_the_callers_search_path(
    conn: psycopg.Connection,
) -> None:
    conn.execute("SET search_path = app, public")
    reading = read_schema(
        conn,
        also=("SELECT current_setting('search_path'), 42", "SELECT * FROM (VALUES (1), (2)) v"),
    )
    assert reading.also == ((("app, public", 42),), ((1,), (2,)))
    assert read_schema(conn).also is None


def test_through_another_driver(database: Database) -> None:
    url = make_url(database.url).set(drivername="postgresql+psycopg2")
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            before = read_schema(connection)
            again = read_schema(
                connection, same_as=before, also=("SELECT 1", "SHOW standard_conforming_strings")
            )
            assert again.reused
            assert again.also == (((1,),), (("on",),))
            connection.exec_driver_sql(CHANGES["column default"])
            after = read_schema(connection, same_as=before)
            assert not after.reused
            assert after.snapshot != before.snapshot
            connection.rollback()
    finally:
        engine.dispose()


@pytest.mark.usefixtures("checked_reads")
@pytest.mark.parametrize("driver", ["psycopg2", "pg8000"])
def test_reads_through_another_driver_are_incremental(database: Database, driver: str) -> None:
    """Through psycopg2 or pg8000 under SQLAlchemy, the same statements run one by one: each
    read after the first prints only what changed (every read compared with a full one)."""
    url = make_url(database.url).set(drivername=f"postgresql+{driver}")
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            reading = read_schema(connection)
            assert reading.printed is not None and reading.printed > 2
            quiet = read_schema(connection, since=reading)
            assert quiet.printed == 0
            for change in ("column default", "table comment", "column type"):
                connection.exec_driver_sql(CHANGES[change])
                after = read_schema(connection, since=quiet, also=("SELECT 42",))
                assert after.printed == 1, change
                assert after.also == (((42,),),)
                assert after.snapshot == take_snapshot(connection)
                quiet = after
            connection.rollback()
    finally:
        engine.dispose()


# ------------------------------------------------------------------ in the round trips

_BASE = Rev(
    "a1a1a1a1a1a1",
    None,
    "create t",
    "op.execute(" + repr(SCHEMA.replace("\n", " ")) + ")",
    """
    op.execute("DROP VIEW v; DROP TABLE child; DROP TABLE t; DROP SEQUENCE s")
    op.execute("DROP FUNCTION f(); DROP FUNCTION touch(); DROP DOMAIN positive")
    op.execute("DROP TYPE mood; DROP SCHEMA app")
    """,
)

#: Revisions whose downgrade runs but leaves one attribute as the upgrade made it; the upgrade
#: can run again.
_FORGETFUL = [
    ("b2b2b2b2b2b2", "default", "ALTER TABLE t ALTER COLUMN c SET DEFAULT 2"),
    ("c3c3c3c3c3c3", "comment", "COMMENT ON COLUMN t.d IS 'dd'"),
    ("d4d4d4d4d4d4", "predicate", "DROP INDEX ix_t_c; CREATE INDEX ix_t_c ON t (c) WHERE c > 1"),
    ("e5e5e5e5e5e5", "deferrable", "ALTER TABLE child ALTER CONSTRAINT fk_t DEFERRABLE"),
    (
        "f6f6f6f6f6f6",
        "labels",
        "ALTER TYPE mood RENAME TO mood_old; CREATE TYPE mood AS ENUM ('sad', 'happy'); "
        "ALTER TABLE t ALTER COLUMN m TYPE mood USING m::text::mood; DROP TYPE mood_old",
    ),
]


def test_a_downgrade_leaving_one_attribute_fails_its_roundtrip(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    revisions = [_BASE]
    for (rev, message, sql), parent in zip(
        _FORGETFUL, [_BASE.revision, *(r for r, _, _ in _FORGETFUL)], strict=False
    ):
        revisions.append(
            Rev(rev, parent, message, f"op.execute({sql!r})", 'op.execute("SELECT 1")')
        )
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn, "-v", "-k", "roundtrip")
    result.assert_outcomes(passed=1, failed=len(_FORGETFUL))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "downgrade of b2b2b2b2b2b2 (default) did not restore the schema before it:",
            "  downgrade of b2b2b2b2b2b2 (default) changed column public.t.c: default 1 → 2",
            "  fix: in downgrade() (migrations/versions/0001_b2b2b2b2b2b2.py:17), restore the "
            'column\'s default: op.alter_column("t", "c", server_default=sa.text("1"))',
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "downgrade of c3c3c3c3c3c3 (comment) did not restore the schema before it:",
            "  downgrade of c3c3c3c3c3c3 (comment) changed column public.t.d: comment d → dd",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "downgrade of d4d4d4d4d4d4 (predicate) did not restore the schema before it:",
            "  downgrade of d4d4d4d4d4d4 (predicate) changed index public.t.ix_t_c: "
            "predicate (c > 0) → (c > 1)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "downgrade of e5e5e5e5e5e5 (deferrable) did not restore the schema before it:",
            "  downgrade of e5e5e5e5e5e5 (deferrable) changed constraint public.child.fk_t: "
            "deferrable false → true",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "downgrade of f6f6f6f6f6f6 (labels) did not restore the schema before it:",
            "  downgrade of f6f6f6f6f6f6 (labels) changed type public.mood: "
            "labels happy, sad → sad, happy (reordered)",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_every_incremental_read_of_a_long_history_is_a_full_read(
    pytester: pytest.Pytester, inner_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 generated revisions (tables, foreign keys between them, enums, defaults, checks,
    # indexes, drops): each of the ~120 reads of the round trips is compared with a full read
    benchmarks = Path(__file__).parents[1] / "benchmarks"
    sys.path.insert(0, str(benchmarks))
    try:
        from gen_alembic_project import generate  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(benchmarks))
    generate(pytester.path / "project", 40)
    monkeypatch.chdir(pytester.path / "project")
    monkeypatch.setenv(CHECK_READS_ENV, "1")
    result = run_checks(pytester, inner_dsn, "-q")
    result.assert_outcomes(passed=1 + 2 * 40 + 1)
    result.stdout.no_fnmatch_line("*differs from a full read*")


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2", "pg8000", "asyncpg"])
def test_a_connection_in_autocommit_mode_reads_in_a_transaction_of_its_own(
    database: Database, driver: str
) -> None:
    """env.py may put its connection in AUTOCOMMIT mode (each migration step commits on its
    own): a read then runs in a short transaction of its own, and leaves the connection as it
    was (in autocommit, its search_path, nothing of the read's settings)."""
    dialect = {"asyncpg": "asyncpg"}.get(driver, driver)
    url = make_url(database.url).set(drivername=f"postgresql+{dialect}")
    if driver == "asyncpg":
        from sqlalchemy.ext.asyncio import create_async_engine

        async_engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        import asyncio

        async def go() -> tuple[Any, Any, Any, Any]:
            async with async_engine.connect() as conn:
                result = await conn.run_sync(_autocommit_reads)
            await async_engine.dispose()
            return result

        first, again, after, state = asyncio.run(go())
    else:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                first, again, after, state = _autocommit_reads(connection)
        finally:
            engine.dispose()
    assert again.snapshot == first.snapshot
    assert after.snapshot != first.snapshot
    assert "autocommit_t" in {t.name for t in after.snapshot.tables}
    assert after.printed == 1  # incremental: only the new table was printed
    # the table the connection created (committed at once) is read; the connection is still
    # in autocommit, outside any transaction, with its own search_path
    assert state == ("idle", "public, pg_catalog", "on")


def _autocommit_reads(connection: Any) -> tuple[Any, Any, Any, Any]:
    connection.exec_driver_sql("SET search_path = public, pg_catalog")
    connection.exec_driver_sql("SET jit = on")
    first = read_schema(connection)
    again = read_schema(connection, since=first)
    connection.exec_driver_sql("CREATE TABLE autocommit_t (id int)")
    after = read_schema(connection, since=again)
    assert take_snapshot(connection) == after.snapshot
    (in_transaction,) = connection.exec_driver_sql(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid() "
        "AND state = 'idle in transaction'"
    ).one()
    path = connection.exec_driver_sql("SHOW search_path").scalar_one()
    jit = connection.exec_driver_sql("SHOW jit").scalar_one()
    connection.exec_driver_sql("DROP TABLE autocommit_t")
    return first, again, after, ("idle" if in_transaction == 0 else "in transaction", path, jit)
