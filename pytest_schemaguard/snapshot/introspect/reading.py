"""Running the catalog queries on a connection: psycopg 3 (pipelined, prepared once per
session) or any SQLAlchemy connection.

Two tiny statements around the queries pin ``search_path`` for the duration of the snapshot, so
that the texts the server prints (``format_type``, ``pg_get_expr``, ``pg_get_constraintdef``...)
are always fully schema-qualified, whatever ``search_path`` the caller's connection has.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import sqlalchemy

from pytest_schemaguard import dbapi
from pytest_schemaguard.snapshot.introspect.builder import Builder
from pytest_schemaguard.snapshot.introspect.queries import query

__all__ = ["Options", "in_autocommit", "own_transaction", "read_psycopg", "read_sqlalchemy"]

#: ``search_path`` during a snapshot: nothing user-defined is visible, so every user object the
#: server prints is schema-qualified (as in ``pg_dump`` output).
_PINNED_SEARCH_PATH = "pg_catalog"

Options = tuple[bool, "tuple[str, ...] | None", "tuple[str, ...]"]
"""``(include_grants, schemas, exclude_tables)``, as :func:`~.queries.query` takes them."""

#: ``jit`` is off while the catalog queries run, transaction-local like ``search_path``: they
#: are large (hundreds of expressions, and a logged read's plan is costed with sequential
#: scans disabled), so on a server with JIT on (the default wherever PostgreSQL was built with
#: LLVM) each run compiled them for seconds before running for a millisecond.
NO_JIT = "pg_catalog.set_config('jit', 'off', true)"

_PIN_PATH = (
    "SELECT current_setting('search_path'), set_config('search_path', %(path)s, true), "
    "ARRAY(SELECT name::text FROM pg_catalog.pg_prepared_statements "
    f"WHERE name = ANY (%(names)s)), current_setting('jit'), {NO_JIT}"
)
_RESTORE_PATH = "SELECT set_config('search_path', %(path)s, true), set_config('jit', %(jit)s, true)"


def statement_name(sql: str) -> str:
    """The name under which a catalog query is prepared on the server (see
    :func:`~pytest_schemaguard.dbapi.statement_name`)."""
    return dbapi.statement_name(sql, "schemaguard_snapshot_")


def read_psycopg(
    raw: psycopg.Connection[Any], options: Options, builder: Builder, also: tuple[str, ...] = ()
) -> tuple[tuple[tuple[Any, ...], ...], ...] | None:
    """Read both catalog documents into ``builder`` through a psycopg connection that is in a
    transaction (or will start one with the first statement); run the statements ``also``, if
    any, in the same pipeline after the snapshot (``search_path`` restored) and return the rows
    of each.

    The catalog queries run as statements prepared on the server with ``PREPARE`` (planning
    them costs more than running them on a small schema), made once per session: psycopg's
    own automatic preparation is not used, because psycopg deallocates every statement it
    prepared after any ``DROP`` or ``ALTER`` on the connection, so a snapshot after each
    migration step would be planned anew every time.  The statement pinning ``search_path``
    also says which of the two statements the session has already (a ``DEALLOCATE ALL`` or
    ``DISCARD ALL`` may have removed them); missing ones are prepared in the same transaction
    before they run, which also holds behind a transaction-mode pooler.

    Everything goes through one pipeline, in three waits for the server: the pinning statement;
    the ``PREPARE`` statements when needed and the first query; the second query and the
    statement restoring ``search_path``, sent before the objects of the first document are
    built, so the server computes the second while the client builds."""
    first_sql, second_sql = query(raw.info.server_version, *options)
    rows: tuple[tuple[tuple[Any, ...], ...], ...] | None = None
    names = (statement_name(first_sql), statement_name(second_sql))
    pinned = {"path": _PINNED_SEARCH_PATH, "names": list(names)}
    with contextlib.ExitStack() as stack:
        pin, first, second, restore = (stack.enter_context(raw.cursor()) for _ in range(4))
        extras = [stack.enter_context(raw.cursor()) for _ in also]
        pipeline: contextlib.AbstractContextManager[Any] = (
            raw.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext()
        )
        with pipeline:
            (old_path, _, present, old_jit, _) = _one(
                pin.execute(_PIN_PATH, pinned, prepare=False).fetchone()
            )
            for name, sql in zip(names, (first_sql, second_sql), strict=True):
                if name not in present:
                    pin.execute(f"PREPARE {name} AS {sql}", prepare=False)
            first.execute(f"EXECUTE {names[0]}", prepare=False)
            (first_text,) = _one(first.fetchone())
            second.execute(f"EXECUTE {names[1]}", prepare=False)
            restore.execute(_RESTORE_PATH, {"path": old_path, "jit": old_jit}, prepare=False)
            for extra, statement in zip(extras, also, strict=True):
                extra.execute(statement, prepare=False)
            builder.add_first(first_text)
        # Leaving the pipeline waited for the remaining results.
        builder.add_second(_one(second.fetchone())[0])
        if also:
            rows = tuple(dbapi.row_tuples(extra.fetchall()) for extra in extras)
    return rows


def in_autocommit(conn: Any) -> bool:
    """Whether a SQLAlchemy connection is in AUTOCOMMIT mode (each statement its own
    transaction: env.py may ask for it, ``isolation_level="AUTOCOMMIT"``)."""
    # every driver's DBAPI connection (asyncpg's through SQLAlchemy's adapter) says it
    dbapi_connection = conn.connection.dbapi_connection
    return bool(getattr(dbapi_connection, "autocommit", False)) or (
        conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    )


@contextlib.contextmanager
def own_transaction(conn: Any) -> Iterator[None]:
    """On a SQLAlchemy connection in AUTOCOMMIT mode, a short transaction for a read (which
    pins ``search_path`` for its transaction, and needs one snapshot of the catalog), as an
    autocommit psycopg connection gets; on any other connection, nothing."""
    if not in_autocommit(conn):
        yield
        return
    raw = conn.connection.driver_connection
    if isinstance(raw, psycopg.Connection):
        with raw.transaction():
            yield
        return
    dbapi.execute_as_is(conn, "BEGIN")
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            dbapi.execute_as_is(conn, "ROLLBACK")
        raise
    dbapi.execute_as_is(conn, "COMMIT")


def read_sqlalchemy(
    conn: Any, options: Options, builder: Builder, also: tuple[str, ...] = ()
) -> tuple[tuple[tuple[Any, ...], ...], ...] | None:
    """:func:`read_psycopg` through a SQLAlchemy connection, on any PostgreSQL driver (in a
    transaction of its own when the connection is in AUTOCOMMIT mode)."""
    with own_transaction(conn):
        return _read_sqlalchemy(conn, options, builder, also)


def _read_sqlalchemy(
    conn: Any, options: Options, builder: Builder, also: tuple[str, ...] = ()
) -> tuple[tuple[tuple[Any, ...], ...], ...] | None:
    raw = conn.connection.driver_connection
    if isinstance(raw, psycopg.Connection):
        if not conn.in_transaction():
            # As any statement through SQLAlchemy would; the driver connection then runs in
            # the transaction SQLAlchemy knows about.
            conn.begin()
        return read_psycopg(raw, options, builder, also)
    # Another driver (psycopg2, asyncpg, pg8000): the same statements one after the other.
    # Parameters go through SQLAlchemy's text(), which renders each driver's own parameter
    # style (asyncpg rejects the pyformat style); the catalog queries take none, and go to the
    # driver as they are (a "%" in a name they hold is no placeholder).
    old_path, server_version, old_jit = conn.execute(
        _PIN_PATH_TEXT, {"path": _PINNED_SEARCH_PATH}
    ).one()[:3]
    first_sql, second_sql = query(int(server_version), *options)
    builder.add_first(dbapi.execute_as_is(conn, first_sql).scalar_one())
    builder.add_second(dbapi.execute_as_is(conn, second_sql).scalar_one())
    conn.execute(_RESTORE_PATH_TEXT, {"path": old_path, "jit": old_jit})
    if not also:
        return None
    return tuple(dbapi.row_tuples(dbapi.execute_as_is(conn, a).all()) for a in also)


_PIN_PATH_TEXT = sqlalchemy.text(
    "SELECT current_setting('search_path'), current_setting('server_version_num')::int, "
    f"current_setting('jit'), set_config('search_path', :path, true), {NO_JIT}"
)
_RESTORE_PATH_TEXT = sqlalchemy.text(
    "SELECT set_config('search_path', :path, true), set_config('jit', :jit, true)"
)


def _one(row: Any) -> tuple[Any, ...]:
    if row is None:  # pragma: no cover - every statement here returns a row
        raise RuntimeError("statement returned no row")
    return tuple(row)
