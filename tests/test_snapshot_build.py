"""Building a snapshot by relation after an incremental read (``read_schema(since=...)``):
only the relations the read printed again are made anew, the others are the very objects of
the earlier snapshot, and the whole is always what a full build of the same catalog gives."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from pytest_schemaguard.server import Database, PostgresServer
from pytest_schemaguard.snapshot.introspect import read_schema, take_snapshot
from pytest_schemaguard.snapshot.introspect.builder import build_snapshot
from pytest_schemaguard.snapshot.introspect.delta import CHECK_READS_ENV
from pytest_schemaguard.snapshot.model import Snapshot, Table

SCHEMA = """
CREATE TABLE a (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, x text);
CREATE TABLE b (
    id serial PRIMARY KEY,
    a_id integer CONSTRAINT fk_a REFERENCES a (id),
    y integer CHECK (y > 0)
);
CREATE TABLE untouched (id integer PRIMARY KEY, note text DEFAULT 'n');
CREATE INDEX ix_untouched ON untouched (note);
CREATE TYPE pair AS (p integer, q text);
"""

#: Each step changes something of one relation, of a relation another one names, or of a
#: sequence an identity column takes its options from; ``untouched`` never changes.
STEPS = [
    "CREATE INDEX ix_b_y ON b (y)",
    "ALTER TABLE a RENAME COLUMN id TO key",  # b's foreign key names it
    "ALTER TABLE a ALTER COLUMN key SET INCREMENT BY 3",  # only the identity sequence's rows
    "ALTER TABLE a ALTER COLUMN key RESTART WITH 50",
    "CREATE VIEW v AS SELECT * FROM b",
    "COMMENT ON TABLE a IS 'the a'",
    "ALTER TYPE pair RENAME ATTRIBUTE q TO qq",
    "ALTER TABLE b DROP CONSTRAINT fk_a",
    "ALTER TABLE a ADD COLUMN z integer",
    "ALTER TABLE a DROP COLUMN z",
    "CREATE SEQUENCE s",
    "ALTER SEQUENCE s INCREMENT 2",
    "DROP VIEW v",
    "ALTER TABLE b RENAME TO bb",
    "CREATE TABLE empty ()",
    "ALTER TABLE empty ADD COLUMN k integer",
    "CREATE TABLE p (id integer, d date) PARTITION BY RANGE (d)",
    "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')",
    "CREATE TRIGGER tr BEFORE UPDATE ON a FOR EACH ROW "
    "EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    "ALTER TABLE a ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY pol ON a USING (true)",
    "ALTER POLICY pol ON a RENAME TO pol2",
    "DROP TABLE bb",
]


@pytest.fixture
def conn(schemaguard_postgres: PostgresServer) -> Iterator[psycopg.Connection]:
    db: Database = schemaguard_postgres.create_database()
    try:
        with psycopg.connect(db.dsn) as connection:
            connection.execute(SCHEMA)
            yield connection
            connection.rollback()
    finally:
        schemaguard_postgres.drop_database(db)


def _table(snapshot: Snapshot, name: str) -> Table:
    return next(t for t in snapshot.tables if t.name == name)


def test_each_build_by_relation_is_the_whole_build(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CHECK_READS_ENV, raising=False)  # compared here, step by step
    reading = read_schema(conn)
    for step in STEPS:
        conn.execute(step)
        after = read_schema(conn, since=reading)
        assert after.snapshot == build_snapshot(after.catalog.data()), step
        assert after.snapshot == take_snapshot(conn), step
        # the relation no step touched is taken over, not made again
        assert _table(after.snapshot, "untouched") is _table(reading.snapshot, "untouched")
        reading = after


def test_an_identity_columns_sequence_change_makes_its_table_again(
    conn: psycopg.Connection,
) -> None:
    before = read_schema(conn)
    conn.execute("ALTER TABLE a ALTER COLUMN id SET INCREMENT BY 7")
    after = read_schema(conn, since=before)
    column = _table(after.snapshot, "a").columns[0]
    assert column.identity_options is not None
    assert column.identity_options.increment == 7
    assert _table(after.snapshot, "a") != _table(before.snapshot, "a")


def test_a_reading_of_the_same_catalog_hands_its_parts_on(conn: psycopg.Connection) -> None:
    first = read_schema(conn)
    same = read_schema(conn, same_as=first, since=first)
    assert same.reused
    conn.execute("COMMENT ON TABLE b IS 'b'")
    after = read_schema(conn, since=same)
    assert after.snapshot == take_snapshot(conn)
    assert _table(after.snapshot, "a") is _table(first.snapshot, "a")
    assert _table(after.snapshot, "b") is not _table(first.snapshot, "b")
