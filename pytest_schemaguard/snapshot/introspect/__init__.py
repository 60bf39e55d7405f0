"""Read a :class:`~pytest_schemaguard.snapshot.model.Snapshot` from the PostgreSQL catalog.

Two catalog queries build the whole picture as JSON documents on the server (never a query per
object): the first reads sequences, columns and constraints, the second relations, indexes and
everything else.  Rows are JSON arrays; constraint and index columns come as attribute numbers and
are named on the client.  The two queries are pipelined, so the server computes the second while
the client builds objects from the first.  Two tiny statements around them pin ``search_path`` for
the duration of the snapshot, so that the texts the server prints (``format_type``,
``pg_get_expr``, ``pg_get_constraintdef``...) are always fully schema-qualified, whatever
``search_path`` the caller's connection has.  The snapshot runs inside
the caller's current transaction (it sees uncommitted DDL) and leaves it as it found it.

Each object family has its module, holding its section of the catalog queries and the code that
turns the section's rows into model objects:

- :mod:`~.schemas`: schemas, extensions;
- :mod:`~.types`: sequences, enums, domains, composite types;
- :mod:`~.tables`: tables, views and their columns;
- :mod:`~.constraints`: table constraints;
- :mod:`~.indexes`: indexes;
- :mod:`~.routines`: functions, triggers;
- :mod:`~.access`: policies, grants.

:mod:`~.queries` puts the sections together into the two queries, :mod:`~.reading` runs them on
a connection, :mod:`~.builder` hands each section to its family and assembles the snapshot.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from typing import Any

import psycopg

from pytest_schemaguard.snapshot.introspect.builder import (
    Builder,
    adopt,
    build_catalog,
    build_snapshot,
)
from pytest_schemaguard.snapshot.introspect.delta import (
    CHECK_READS_ENV,
    Also,
    Catalog,
    read_incrementally,
    read_incrementally_sqlalchemy,
)
from pytest_schemaguard.snapshot.introspect.queries import DEFAULT_EXCLUDED_TABLES
from pytest_schemaguard.snapshot.introspect.reading import (
    own_transaction,
    read_psycopg,
    read_sqlalchemy,
)
from pytest_schemaguard.snapshot.model import Snapshot

__all__ = [
    "DEFAULT_EXCLUDED_TABLES",
    "Catalog",
    "Reading",
    "build_snapshot",
    "read_schema",
    "take_snapshot",
]


def take_snapshot(
    conn: Any,
    *,
    include_grants: bool = False,
    schemas: SequenceABC[str] | None = None,
    exclude_tables: SequenceABC[str] = DEFAULT_EXCLUDED_TABLES,
) -> Snapshot:
    """Read the schema visible on ``conn`` into a :class:`Snapshot`.

    ``conn`` is a SQLAlchemy ``Connection`` or a psycopg 3 ``Connection``; the snapshot is read
    inside its current transaction (a SQLAlchemy connection that has not begun one begins it, as
    any statement would; an autocommit psycopg connection gets a short transaction of its own).
    ``schemas`` limits the snapshot to the named schemas (default: every schema except the
    system ones and those owned by extensions).  Tables named in ``exclude_tables`` (in any
    schema) are left out, as are all objects owned by extensions and the always-present
    ``plpgsql`` extension.  Grants are read only with ``include_grants``.
    """
    if isinstance(schemas, str):
        raise TypeError("schemas must be a sequence of schema names, not a string")
    builder = Builder(include_grants)
    options = (
        include_grants,
        tuple(schemas) if schemas is not None else None,
        tuple(exclude_tables),
    )
    _read(conn, options, builder)
    return builder.snapshot()


@dataclass(frozen=True, eq=False)
class Reading:
    """A snapshot read by :func:`read_schema`, with the catalog rows it was built from."""

    snapshot: Snapshot
    catalog: Catalog
    also: Also | None = None
    """The rows of each ``also`` statement (None without any)."""
    reused: bool = False
    """The catalog was that of ``same_as``, whose snapshot this is (nothing was built)."""
    printed: int | None = None
    """How many relations the server printed (an incremental read); None for a full read."""


def read_schema(
    conn: Any,
    *,
    exclude_tables: SequenceABC[str] = DEFAULT_EXCLUDED_TABLES,
    same_as: Reading | None = None,
    also: tuple[str, ...] = (),
    since: Reading | None = None,
) -> Reading:
    """:func:`take_snapshot` (no grants, every schema), keeping the catalog rows.

    With ``since`` (an earlier reading on the same connection), the read is incremental: the
    server prints only the relations whose catalog rows changed since (see :mod:`~.delta`),
    the others are taken from ``since``.  That needs psycopg 3 (directly or under SQLAlchemy)
    or a SQLAlchemy connection on another driver (its statements then run one by one); a
    connection of another driver without SQLAlchemy gets a full read.

    When the catalog is the one ``same_as`` was read from, its snapshot is returned and nothing
    is built: a snapshot is a function of the catalog rows.  (Rows are identified by object ids
    and row versions, so a schema rebuilt to the same shape reads as another catalog; then the
    snapshot is built and compared as usual.)  ``also`` are statements run in a round trip the
    read makes anyway, on the caller's ``search_path``: after the snapshot's own statements in
    a full read, right after the first statement (whether anything can have changed) in an
    incremental one; nothing the read does is visible to them.  Their rows are
    :attr:`Reading.also`.
    """
    if hasattr(conn, "exec_driver_sql"):
        with own_transaction(conn):  # a SQLAlchemy connection in AUTOCOMMIT mode
            return _read_schema(conn, exclude_tables, same_as, also, since)
    return _read_schema(conn, exclude_tables, same_as, also, since)


def _read_schema(
    conn: Any,
    exclude_tables: SequenceABC[str],
    same_as: Reading | None,
    also: tuple[str, ...],
    since: Reading | None,
) -> Reading:
    excluded = tuple(exclude_tables)
    raw = _psycopg_of(conn)
    collecting = gc.isenabled()
    gc.disable()  # see _read
    try:
        base = since.catalog if since is not None else None
        if raw is not None:
            catalog, row = read_incrementally(raw, excluded, base, also)
            printed = catalog.printed
        elif hasattr(conn, "exec_driver_sql"):  # SQLAlchemy on psycopg2, asyncpg, pg8000
            catalog, row = read_incrementally_sqlalchemy(conn, excluded, base, also)
            printed = catalog.printed
        else:
            builder = Builder(False, build=False)  # only the documents
            row = _read(conn, (False, None, excluded), builder, also)
            first, second = (json.loads(text) for text in builder.documents)
            catalog = Catalog.of({**first, **second})
            printed = None
        if same_as is not None and catalog.same(same_as.catalog):
            adopt(catalog, same_as.catalog)
            return Reading(same_as.snapshot, catalog, row, reused=True, printed=printed)
        snapshot = build_catalog(catalog, since.catalog if since is not None else None)
        if os.environ.get(CHECK_READS_ENV) == "1" and snapshot != build_snapshot(catalog.data()):
            raise AssertionError("a snapshot built by relation differs from one built whole")
        return Reading(snapshot, catalog, row, printed=printed)
    finally:
        if collecting:
            gc.enable()


def _psycopg_of(conn: Any) -> psycopg.Connection[Any] | None:
    """The psycopg 3 connection under ``conn``, in a transaction, when it is one."""
    if isinstance(conn, psycopg.Connection):
        if conn.autocommit:
            raise ValueError(
                "read_schema() needs a connection in a transaction, not in autocommit mode"
            )
        return conn
    if not hasattr(conn, "exec_driver_sql"):
        return None
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        return None
    if not conn.in_transaction():
        conn.begin()  # as any statement through SQLAlchemy would
    return raw


def _read(
    conn: Any,
    options: tuple[bool, tuple[str, ...] | None, tuple[str, ...]],
    builder: Builder,
    also: tuple[str, ...] = (),
) -> Also | None:
    # Tens of thousands of small acyclic objects are made here; with the cyclic garbage
    # collector running, each burst of allocations would trigger collections that traverse every
    # live object of the process (a full collection at 1,000 tables easily costs more than
    # building the snapshot).  Nothing made here can form a cycle, so it is paused meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if isinstance(conn, psycopg.Connection):
            if conn.autocommit:
                # Each statement would be its own transaction and the transaction-local
                # search_path would not reach the catalog queries: use one short transaction.
                with conn.transaction():
                    return read_psycopg(conn, options, builder, also)
            return read_psycopg(conn, options, builder, also)
        if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy Connection
            return read_sqlalchemy(conn, options, builder, also)
        raise TypeError(
            "take_snapshot() needs a SQLAlchemy Connection or a psycopg 3 Connection, "
            f"got {type(conn).__name__}"
        )
    finally:
        if collecting:
            gc.enable()
