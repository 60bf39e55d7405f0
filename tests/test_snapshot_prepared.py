"""The catalog queries run as statements prepared once per session and kept across DDL
(psycopg's own prepared statements are dropped after every DROP or ALTER, so a snapshot after
each migration step would otherwise be planned anew)."""

from __future__ import annotations

import psycopg

from pytest_schemaguard.server import Database
from pytest_schemaguard.snapshot.introspect import take_snapshot

_OURS = (
    "SELECT name, prepare_time FROM pg_prepared_statements "
    "WHERE name LIKE 'schemaguard_snapshot_%' ORDER BY name"
)


def _alter_back_and_forth(conn: psycopg.Connection, times: int) -> None:
    before = take_snapshot(conn)
    for step in range(times):
        conn.execute("ALTER TABLE t ADD COLUMN z integer")
        columns = [c.name for c in take_snapshot(conn).get_table("public.t").columns]
        assert columns == ["id", "a", "z"], step
        conn.execute("ALTER TABLE t DROP COLUMN z")
        assert take_snapshot(conn) == before, step


def test_prepared_once_and_kept_across_ddl(schemaguard_database: Database) -> None:
    with psycopg.connect(schemaguard_database.dsn) as conn:
        conn.execute("CREATE TABLE t (id integer PRIMARY KEY, a integer)")
        take_snapshot(conn)
        prepared = conn.execute(_OURS).fetchall()
        assert len(prepared) == 2
        _alter_back_and_forth(conn, 4)
        # the same two statements the first snapshot prepared: never prepared again
        assert conn.execute(_OURS).fetchall() == prepared
        conn.rollback()


def test_statements_deallocated_under_it_are_prepared_again(schemaguard_database: Database) -> None:
    with psycopg.connect(schemaguard_database.dsn) as conn:
        conn.execute("CREATE TABLE t (id integer PRIMARY KEY, a integer)")
        # psycopg prepares a statement run five times, and on the next DROP or ALTER sends
        # DEALLOCATE ALL, which takes the snapshot's statements too
        for _ in range(6):
            conn.execute("SELECT count(*) FROM t").fetchone()
        _alter_back_and_forth(conn, 2)
        conn.execute("DEALLOCATE ALL")
        _alter_back_and_forth(conn, 1)
        conn.execute("DISCARD PLANS")
        _alter_back_and_forth(conn, 1)
        assert len(conn.execute(_OURS).fetchall()) == 2
        conn.rollback()
