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
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from typing import Any

import psycopg

from pytest_schemaguard.snapshot.introspect.builder import Builder, build_snapshot
from pytest_schemaguard.snapshot.introspect.queries import DEFAULT_EXCLUDED_TABLES
from pytest_schemaguard.snapshot.introspect.reading import read_psycopg, read_sqlalchemy
from pytest_schemaguard.snapshot.model import Snapshot

__all__ = ["DEFAULT_EXCLUDED_TABLES", "Reading", "build_snapshot", "read_schema", "take_snapshot"]


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
    """A snapshot read by :func:`read_schema`, with the texts of the two catalog documents it
    was built from."""

    snapshot: Snapshot
    documents: tuple[str, str]
    also: tuple[Any, ...] | None = None
    """The row of the ``also`` statement."""
    reused: bool = False
    """The documents were those of ``same_as``, whose snapshot this is (nothing was built)."""


def read_schema(
    conn: Any,
    *,
    exclude_tables: SequenceABC[str] = DEFAULT_EXCLUDED_TABLES,
    same_as: Reading | None = None,
    also: str | None = None,
) -> Reading:
    """:func:`take_snapshot` (no grants, every schema), keeping the catalog documents.

    When both documents are the very texts ``same_as`` was built from, its snapshot is returned
    and nothing is built: a snapshot is a function of those texts, so equal texts always mean
    an equal snapshot.  (The texts hold object ids and attribute numbers, so a schema rebuilt
    to the same shape reads as other texts; then the snapshot is built and compared as usual.)
    ``also`` is a statement run in the same round trip, after the snapshot's own statements
    (``search_path`` restored); its row is :attr:`Reading.also`.
    """
    options = (False, None, tuple(exclude_tables))
    builder = Builder(False, same_as.documents if same_as is not None else None)
    row = _read(conn, options, builder, also)
    first, second = builder.documents
    if builder.unchanged:
        assert same_as is not None
        return Reading(same_as.snapshot, same_as.documents, row, reused=True)
    return Reading(builder.snapshot(), (first, second), row)


def _read(
    conn: Any,
    options: tuple[bool, tuple[str, ...] | None, tuple[str, ...]],
    builder: Builder,
    also: str | None = None,
) -> tuple[Any, ...] | None:
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
