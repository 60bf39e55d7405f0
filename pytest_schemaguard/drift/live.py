"""Reading a live database, read-only: its schema (one snapshot) and the revision it is stamped
with.

The connection is opened with ``default_transaction_read_only = on`` (and the transaction
itself is ``READ ONLY``), a short ``statement_timeout`` and ``lock_timeout``, and
``application_name = pytest-schemaguard``, so that a DBA sees who is there and nothing can be
written or waited on for long.  What runs there: the catalog queries of the snapshot (two
statements prepared in the session, gone with it), a catalog query for the project's version
table (:class:`VersionTable`: the ``version_table`` and ``version_table_schema`` its env.py
configures) and one ``SELECT`` of it.  Nothing is created, changed or locked beyond the
``ACCESS SHARE``
locks of those reads, which end with the transaction; the connection is closed before the
comparison starts.

This module does not import pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.snapshot.introspect import DEFAULT_EXCLUDED_TABLES, take_snapshot
from pytest_schemaguard.snapshot.model import Snapshot
from pytest_schemaguard.timeouts import connect_timeout
from pytest_schemaguard.urls import mask_url, named_host_and_port

__all__ = [
    "APPLICATION_NAME",
    "LOCK_TIMEOUT_MS",
    "STATEMENT_TIMEOUT_MS",
    "LiveError",
    "LiveSchema",
    "VersionTable",
    "connect_live",
    "read_live",
]

APPLICATION_NAME = "pytest-schemaguard"
STATEMENT_TIMEOUT_MS = 30_000
"""A catalog query that runs longer is cancelled (the snapshot of thousands of tables takes
a second or two)."""
LOCK_TIMEOUT_MS = 1_000
"""A read that would wait for a lock longer (a migration running right now) gives up."""

_VERSION_TABLES = (
    "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
    "AND a.attname = 'version_num' AND NOT a.attisdropped "
    "WHERE c.relname = %(name)s AND c.relkind IN ('r', 'p') "
    "AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s::text) "
    "ORDER BY n.nspname <> 'public', n.nspname"
)


@dataclass(frozen=True)
class VersionTable:
    """The Alembic version table of a project, as its env.py configures it."""

    name: str = "alembic_version"
    """``version_table``."""
    schema: str | None = None
    """``version_table_schema``; None when env.py sets none: Alembic then uses the first schema
    of the search path, so the table is looked for in every schema, ``public`` first."""

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


class LiveError(SchemaguardError):
    """The live database cannot be read (connection, permission, timeout)."""


@dataclass(frozen=True)
class LiveSchema:
    """What was read from a live database."""

    snapshot: Snapshot
    """Its schema (the Alembic version table left out)."""
    stamped: tuple[str, ...]
    """The revisions in its version table (empty: no table, or an empty one)."""
    version_table: str | None
    """The version table read (``public.alembic_version``); None when there is none."""
    server_version: str
    shown: str
    """The DSN as messages show it (password masked)."""
    looked_for: str = "alembic_version"
    """The version table looked for (:class:`VersionTable`, as messages show it)."""


def _conninfo(dsn: str) -> tuple[str, str | None]:
    """A libpq conninfo for a ``postgresql[+driver]://`` URL, and its password."""
    from sqlalchemy.engine import make_url

    url = make_url(dsn)
    password = url.password if isinstance(url.password, str) else None
    parts: dict[str, Any] = {}
    host, port = named_host_and_port(url)
    if host:
        parts["host"] = host
    if port:
        parts["port"] = str(port)
    if url.username:
        parts["user"] = url.username
    if password:
        parts["password"] = password
    if url.database:
        parts["dbname"] = url.database
    for key, value in url.query.items():
        parts[key] = value if isinstance(value, str) else value[-1]
    return psycopg.conninfo.make_conninfo(**parts), password


def connect_live(dsn: str) -> psycopg.Connection[Any]:
    """A read-only connection to the live database (the caller closes it)."""
    conninfo, password = _conninfo(dsn)
    options = " ".join(
        [
            "-c default_transaction_read_only=on",
            f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            f"-c lock_timeout={LOCK_TIMEOUT_MS}",
            f"-c idle_in_transaction_session_timeout={STATEMENT_TIMEOUT_MS * 2}",
            "-c jit=off",
        ]
    )
    try:
        conn = psycopg.connect(
            conninfo,
            application_name=APPLICATION_NAME,
            options=options,
            connect_timeout=connect_timeout(),
            # text, not bytes, from a database in SQL_ASCII (which no catalog read expects)
            client_encoding="utf8",
        )
    except psycopg.Error as exc:
        raise LiveError(
            f"cannot connect to the live database {mask_url(dsn)}: {_reason(exc, password)}. "
            "Check that the server is running and the host, port, user, password and database "
            "are right"
        ) from None
    conn.read_only = True
    return conn


def read_live(
    dsn: str,
    version_table: VersionTable | None = None,
    *,
    conn: psycopg.Connection[Any] | None = None,
) -> LiveSchema:
    """The live database's schema and the revisions stamped in ``version_table`` (default:
    Alembic's ``alembic_version``), read in one read-only transaction; the version table is
    left out of the schema.

    ``conn`` is a connection from :func:`connect_live` opened earlier (to fail early when the
    database cannot be reached); it is closed here, as one opened here is.
    """
    shown = mask_url(dsn)
    _, password = _conninfo(dsn)
    table = version_table or VersionTable()
    if conn is None:
        conn = connect_live(dsn)
    try:
        with conn.transaction():
            version = str(conn.info.parameter_status("server_version") or "").split()[0]
            tables = conn.execute(
                _VERSION_TABLES, {"name": table.name, "schema": table.schema}
            ).fetchall()
            stamped: tuple[str, ...] = ()
            found: str | None = None
            if tables:
                schema, name = tables[0]
                found = f"{schema}.{name}"
                rows = conn.execute(
                    sql.SQL("SELECT version_num FROM {}.{} ORDER BY version_num").format(
                        sql.Identifier(schema), sql.Identifier(name)
                    )
                ).fetchall()
                stamped = tuple(str(row[0]) for row in rows)
            snapshot = take_snapshot(conn, exclude_tables=(*DEFAULT_EXCLUDED_TABLES, table.name))
    except psycopg.Error as exc:
        raise LiveError(
            f"cannot read the schema of the live database {shown}: {_reason(exc, password)}"
        ) from None
    finally:
        conn.close()
    return LiveSchema(snapshot, stamped, found, version, shown, str(table))


def _reason(exc: psycopg.Error, password: str | None) -> str:
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        text += (
            f" (a lock was not granted within {LOCK_TIMEOUT_MS} ms: is a migration running "
            "there right now?)"
        )
    elif isinstance(exc, psycopg.errors.QueryCanceled):
        text += f" (statement_timeout of {STATEMENT_TIMEOUT_MS} ms)"
    return mask_url(text, (password or "",))
