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
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence as SequenceABC
from typing import Any

import psycopg
import sqlalchemy

from pytest_schemaguard.snapshot.model import (
    Column,
    CompositeAttribute,
    CompositeType,
    Constraint,
    Domain,
    DomainConstraint,
    Enum,
    Extension,
    Function,
    Grant,
    Index,
    Policy,
    Schema,
    Sequence,
    SequenceOptions,
    Snapshot,
    Table,
    Trigger,
    View,
    _assemble,
    canonical_expression,
)

__all__ = ["DEFAULT_EXCLUDED_TABLES", "take_snapshot"]

#: Tables left out unless asked for (matched by name in every schema).
DEFAULT_EXCLUDED_TABLES: tuple[str, ...] = ("alembic_version",)

#: ``search_path`` during a snapshot: nothing user-defined is visible, so every user object the
#: server prints is schema-qualified (as in ``pg_dump`` output).
_PINNED_SEARCH_PATH = "pg_catalog"


# --------------------------------------------------------------------------------------------
# The catalog queries
# --------------------------------------------------------------------------------------------

#: Common table expressions of both catalog queries: the schemas, relations and descriptions that
#: a snapshot covers.
_PRELUDE = r"""WITH
ext AS (
    SELECT d.classid, d.objid
    FROM pg_extension e
    JOIN pg_depend d ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
    WHERE d.deptype = 'e'
),
ns AS (
    SELECT n.oid, n.nspname
    FROM pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND left(n.nspname, 8) <> 'pg_toast'
      AND left(n.nspname, 7) <> 'pg_temp'
      AND %(schema_filter)s
      AND NOT EXISTS (
          SELECT 1 FROM ext
          WHERE ext.classid = 'pg_namespace'::regclass AND ext.objid = n.oid)
),
rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relpersistence, c.relrowsecurity,
           c.relforcerowsecurity, c.reloptions, c.relispartition, c.relowner, c.relacl,
           c.relpartbound, ns.nspname
    FROM pg_class c
    JOIN ns ON ns.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'c')
      AND NOT (c.relkind IN ('r', 'p') AND c.relname = ANY (%(exclude_tables)s))
      AND NOT EXISTS (
          SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
),
reldesc AS (
    SELECT d.objoid, d.objsubid, d.description
    FROM pg_description d
    WHERE d.classoid = 'pg_class'::regclass
)
"""

#: The first catalog query: everything that the rows of the second one refer to by attribute
#: number (columns) or that is built first (sequences carry identity options for columns).
_FIRST_QUERY = r"""
SELECT json_build_object(
'server_version', current_setting('server_version_num')::int,
'schemas', (
    SELECT coalesce(json_agg(json_build_object(
        'name', ns.nspname,
        'comment', dn.description)), '[]')
    FROM ns
    LEFT JOIN pg_description dn ON dn.objoid = ns.oid AND dn.classoid = 'pg_namespace'::regclass
        AND dn.objsubid = 0),
'sequences', (
    SELECT coalesce(json_agg(json_build_array(
        rel.oid,
        rel.nspname,
        rel.relname,
        format_type(s.seqtypid, NULL),
        s.seqstart,
        s.seqincrement,
        s.seqmin,
        s.seqmax,
        s.seqcache,
        s.seqcycle,
        on_.nspname || '.' || oc.relname || '.' || oa.attname,
        dep.deptype,
        dep.refobjid,
        dep.refobjsubid,
        d.description)), '[]')
    FROM rel
    JOIN pg_sequence s ON s.seqrelid = rel.oid
    LEFT JOIN reldesc d ON d.objoid = rel.oid AND d.objsubid = 0
    LEFT JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = rel.oid
        AND dep.objsubid = 0 AND dep.refclassid = 'pg_class'::regclass
        AND dep.refobjsubid > 0 AND dep.deptype IN ('a', 'i')
    LEFT JOIN pg_class oc ON oc.oid = dep.refobjid
    LEFT JOIN pg_namespace on_ ON on_.oid = oc.relnamespace
    LEFT JOIN pg_attribute oa ON oa.attrelid = dep.refobjid AND oa.attnum = dep.refobjsubid
    WHERE rel.relkind = 'S'),
'columns', (
    SELECT coalesce(json_agg(json_build_array(
        a.attrelid,
        a.attnum,
        a.attname,
        format_type(a.atttypid, a.atttypmod),
        a.attnotnull,
        -- default or generation expression (attgenerated tells which)
        pg_get_expr(ad.adbin, ad.adrelid),
        -- type without modifiers; NULL when it is the same text as the type above (no
        -- modifier, and not bit or bpchar, which print differently with and without one)
        CASE WHEN a.atttypmod <> -1 OR a.atttypid IN (
                 'bpchar'::regtype, '_bpchar'::regtype, 'bit'::regtype, '_bit'::regtype)
             THEN format_type(a.atttypid, NULL) END,
        CASE WHEN co.oid IS NOT NULL THEN
            CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname)
                 ELSE quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END
        END,
        a.attidentity,
        a.attgenerated,
        d.description
        %(column_grants)s
    ) ORDER BY a.attrelid, a.attnum), '[]')
    FROM pg_attribute a
    JOIN rel ON rel.oid = a.attrelid AND rel.relkind IN ('r', 'p', 'v', 'm', 'c')
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> t.typcollation
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
    LEFT JOIN reldesc d ON d.objoid = a.attrelid AND d.objsubid = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped),
'constraints', (
    SELECT coalesce(json_agg(json_build_array(
        con.conrelid,
        con.conname,
        con.contype,
        pg_get_constraintdef(con.oid),
        con.conkey,
        con.confrelid,
        fn.nspname || '.' || fc.relname,
        con.confkey,
        CASE WHEN con.contype = 'f' AND fr.oid IS NULL THEN ARRAY(
            SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, i)
            JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
            ORDER BY k.i) END,
        con.confupdtype,
        con.confdeltype,
        con.confmatchtype,
        con.condeferrable,
        con.condeferred,
        con.convalidated,
        CASE WHEN con.contype IN ('p', 'u', 'x') THEN ic.relname END,
        dc.description)), '[]')
    FROM pg_constraint con
    JOIN rel ON rel.oid = con.conrelid
    LEFT JOIN rel fr ON con.contype = 'f' AND fr.oid = con.confrelid
    LEFT JOIN pg_class fc ON con.contype = 'f' AND fc.oid = con.confrelid
    LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
    LEFT JOIN pg_class ic ON ic.oid = con.conindid
    LEFT JOIN pg_description dc ON dc.objoid = con.oid AND dc.classoid = 'pg_constraint'::regclass
        AND dc.objsubid = 0
    WHERE con.contype IN ('p', 'u', 'c', 'f', 'x'))
)::text
"""

#: The second catalog query: relations and everything attached to them, types, functions,
#: extensions.  It is sent before the result of the first one is processed, so that the server
#: computes it while the client builds the objects of the first.
_SECOND_QUERY = r"""
SELECT json_build_object(
'relations', (
    SELECT coalesce(json_agg(json_build_array(
        rel.oid,
        rel.nspname,
        rel.relname,
        rel.relkind,
        rel.relpersistence,
        rel.relrowsecurity,
        rel.relforcerowsecurity,
        rel.reloptions,
        CASE WHEN rel.relkind = 'p' THEN pg_get_partkeydef(rel.oid) END,
        CASE WHEN rel.relispartition THEN pg_get_expr(rel.relpartbound, rel.oid) END,
        inh.parents,
        rel.relispartition,
        CASE WHEN rel.relkind IN ('v', 'm') THEN pg_get_viewdef(rel.oid) END,
        d.description
        %(relation_grants)s
    )), '[]')
    FROM rel
    LEFT JOIN reldesc d ON d.objoid = rel.oid AND d.objsubid = 0
    LEFT JOIN (
        SELECT i.inhrelid, array_agg(pn.nspname || '.' || pc.relname ORDER BY i.inhseqno) AS parents
        FROM pg_inherits i
        JOIN pg_class pc ON pc.oid = i.inhparent
        JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        GROUP BY i.inhrelid
    ) inh ON inh.inhrelid = rel.oid
    WHERE rel.relkind IN ('r', 'p', 'v', 'm')),
'indexes', (
    SELECT coalesce(json_agg(json_build_array(
        i.indrelid,
        ic.relname,
        pg_get_indexdef(i.indexrelid),
        quote_ident(ic.relname),
        i.indkey::int2[],
        i.indnkeyatts,
        CASE WHEN i.indexprs IS NOT NULL THEN ARRAY(
            SELECT CASE WHEN k.attnum = 0
                        THEN pg_get_indexdef(i.indexrelid, k.n::int, true) END
            FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
            WHERE k.n <= i.indnkeyatts
            ORDER BY k.n) END,
        am.amname,
        i.indisunique,
        i.indisprimary,
        %(nulls_not_distinct)s,
        pg_get_expr(i.indpred, i.indrelid),
        i.indisvalid,
        con.conname,
        d.description)), '[]')
    FROM pg_index i
    JOIN rel ON rel.oid = i.indrelid
    LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                               AND con.contype IN ('p', 'u', 'x')
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
    LEFT JOIN reldesc d ON d.objoid = i.indexrelid AND d.objsubid = 0),
'triggers', (
    SELECT coalesce(json_agg(json_build_array(
        tg.tgrelid,
        tg.tgname,
        pg_get_triggerdef(tg.oid),
        tg.tgenabled,
        dt.description)), '[]')
    FROM pg_trigger tg
    LEFT JOIN pg_description dt ON dt.objoid = tg.oid AND dt.classoid = 'pg_trigger'::regclass
        AND dt.objsubid = 0
    JOIN rel ON rel.oid = tg.tgrelid
    WHERE NOT tg.tgisinternal AND tg.tgparentid = 0),
'policies', (
    SELECT coalesce(json_agg(json_build_array(
        p.polrelid,
        p.polname,
        p.polcmd,
        p.polpermissive,
        ARRAY(
            SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
            FROM unnest(p.polroles) r ORDER BY 1),
        pg_get_expr(p.polqual, p.polrelid),
        pg_get_expr(p.polwithcheck, p.polrelid),
        dp.description)), '[]')
    FROM pg_policy p
    LEFT JOIN pg_description dp ON dp.objoid = p.oid AND dp.classoid = 'pg_policy'::regclass
        AND dp.objsubid = 0
    JOIN rel ON rel.oid = p.polrelid),
'types', (
    SELECT coalesce(json_agg(json_build_object(
        'schema', ns.nspname,
        'name', t.typname,
        'typtype', t.typtype,
        'relid', t.typrelid,
        'labels', CASE WHEN t.typtype = 'e' THEN ARRAY(
            SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid
            ORDER BY e.enumsortorder) END,
        'base_type', CASE WHEN t.typtype = 'd'
                          THEN format_type(t.typbasetype, t.typtypmod) END,
        'nullable', NOT t.typnotnull,
        'default', pg_get_expr(t.typdefaultbin, 0),
        'collation', CASE WHEN t.typtype = 'd' AND t.typcollation <> bt.typcollation THEN
            CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname)
                 ELSE quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END END,
        'constraints', CASE WHEN t.typtype = 'd' THEN (
            SELECT coalesce(json_agg(json_build_array(
                con.conname, pg_get_constraintdef(con.oid), con.convalidated)), '[]')
            FROM pg_constraint con WHERE con.contypid = t.oid AND con.contype = 'c') END,
        'comment', dty.description)), '[]')
    FROM pg_type t
    LEFT JOIN pg_description dty ON dty.objoid = t.oid AND dty.classoid = 'pg_type'::regclass
        AND dty.objsubid = 0
    JOIN ns ON ns.oid = t.typnamespace
    LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
    LEFT JOIN pg_collation co ON co.oid = t.typcollation
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
    LEFT JOIN rel ON rel.oid = t.typrelid
    WHERE (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND rel.relkind = 'c'))
      AND NOT EXISTS (
          SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid)),
'functions', (
    SELECT coalesce(json_agg(json_build_object(
        'schema', ns.nspname,
        'name', p.proname,
        'arguments', pg_get_function_identity_arguments(p.oid),
        'kind', p.prokind,
        'result', CASE WHEN p.prokind <> 'p' THEN pg_get_function_result(p.oid) END,
        'language', l.lanname,
        'volatility', p.provolatile,
        'security_definer', p.prosecdef,
        'strict', p.proisstrict,
        'definition', CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END,
        'body', CASE WHEN p.prokind <> 'a' THEN p.prosrc END,
        'comment', dpr.description)), '[]')
    FROM pg_proc p
    LEFT JOIN pg_description dpr ON dpr.objoid = p.oid AND dpr.classoid = 'pg_proc'::regclass
        AND dpr.objsubid = 0
    JOIN ns ON ns.oid = p.pronamespace
    JOIN pg_language l ON l.oid = p.prolang
    WHERE NOT EXISTS (
        SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)),
'extensions', (
    SELECT coalesce(json_agg(json_build_object(
        'name', e.extname,
        'schema', n.nspname,
        'version', e.extversion)), '[]')
    FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname <> 'plpgsql')
)::text
"""

_RELATION_GRANTS = """,
        (
            SELECT coalesce(json_agg(json_build_array(
                CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee) END,
                g.privilege_type, g.is_grantable)), '[]')
            FROM aclexplode(rel.relacl) g
            WHERE g.grantee <> rel.relowner)"""

_COLUMN_GRANTS = """,
        (SELECT coalesce(json_agg(json_build_array(
            CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee) END,
            g.privilege_type, g.is_grantable)), '[]')
         FROM aclexplode(a.attacl) g
         WHERE g.grantee <> rel.relowner)"""


def _text_array(values: tuple[str, ...]) -> str:
    """A ``text[]`` literal.  Written into the SQL (not sent as parameters) so that the prepared
    statement is planned once with the real values; E'' escapes work whatever the server's
    ``standard_conforming_strings``."""
    items = ", ".join("E'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
    return f"ARRAY[{items}]::text[]"


@functools.cache
def _query(
    server_version: int,
    include_grants: bool,
    schemas: tuple[str, ...] | None = None,
    exclude_tables: tuple[str, ...] = DEFAULT_EXCLUDED_TABLES,
) -> tuple[str, str]:
    """The two catalog queries for a server version (the SQL differs slightly between
    majors)."""
    parts = {
        "schema_filter": (
            "true" if schemas is None else f"n.nspname = ANY ({_text_array(schemas)})"
        ),
        "exclude_tables": _text_array(exclude_tables),
        "relation_grants": _RELATION_GRANTS if include_grants else "",
        "column_grants": _COLUMN_GRANTS if include_grants else "",
        "nulls_not_distinct": "i.indnullsnotdistinct" if server_version >= 150000 else "false",
    }
    queries = []
    for body in (_FIRST_QUERY, _SECOND_QUERY):
        sql = _PRELUDE + body
        for key, value in parts.items():
            sql = sql.replace(f"%({key})s", value)
        queries.append(sql)
    return queries[0], queries[1]


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


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
    builder = _Builder(include_grants)
    options = (
        include_grants,
        tuple(schemas) if schemas is not None else None,
        tuple(exclude_tables),
    )
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
                    _read_psycopg(conn, options, builder)
            else:
                _read_psycopg(conn, options, builder)
        elif hasattr(conn, "exec_driver_sql"):  # SQLAlchemy Connection
            _read_sqlalchemy(conn, options, builder)
        else:
            raise TypeError(
                "take_snapshot() needs a SQLAlchemy Connection or a psycopg 3 Connection, "
                f"got {type(conn).__name__}"
            )
    finally:
        if collecting:
            gc.enable()
    return builder.snapshot()


_Options = tuple[bool, "tuple[str, ...] | None", "tuple[str, ...]"]
"""``(include_grants, schemas, exclude_tables)``, as :func:`_query` takes them."""

_PIN_PATH = (
    "SELECT current_setting('search_path'), set_config('search_path', %(path)s, true), "
    "ARRAY(SELECT name::text FROM pg_catalog.pg_prepared_statements "
    "WHERE name = ANY (%(names)s))"
)
_RESTORE_PATH = "SELECT set_config('search_path', %(path)s, true)"


@functools.cache
def _statement_name(sql: str) -> str:
    """The name under which a catalog query is prepared on the server: fixed by its text, so a
    session never runs a statement prepared from another version of the query."""
    return "schemaguard_snapshot_" + hashlib.sha1(sql.encode()).hexdigest()[:16]


def _read_psycopg(raw: psycopg.Connection[Any], options: _Options, builder: _Builder) -> None:
    """Read both catalog documents into ``builder`` through a psycopg connection that is in a
    transaction (or will start one with the first statement).

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
    first_sql, second_sql = _query(raw.info.server_version, *options)
    names = (_statement_name(first_sql), _statement_name(second_sql))
    pinned = {"path": _PINNED_SEARCH_PATH, "names": list(names)}
    with contextlib.ExitStack() as stack:
        pin, first, second, restore = (stack.enter_context(raw.cursor()) for _ in range(4))
        pipeline: contextlib.AbstractContextManager[Any] = (
            raw.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext()
        )
        with pipeline:
            (old_path, _, present) = _one(pin.execute(_PIN_PATH, pinned, prepare=False).fetchone())
            for name, sql in zip(names, (first_sql, second_sql), strict=True):
                if name not in present:
                    pin.execute(f"PREPARE {name} AS {sql}", prepare=False)
            first.execute(f"EXECUTE {names[0]}", prepare=False)
            (first_text,) = _one(first.fetchone())
            second.execute(f"EXECUTE {names[1]}", prepare=False)
            restore.execute(_RESTORE_PATH, {"path": old_path}, prepare=False)
            builder.add_first(first_text)
        # Leaving the pipeline waited for the remaining results.
        builder.add_second(_one(second.fetchone())[0])


def _read_sqlalchemy(conn: Any, options: _Options, builder: _Builder) -> None:
    raw = conn.connection.driver_connection
    if isinstance(raw, psycopg.Connection):
        if raw.autocommit:
            raise ValueError(
                "take_snapshot() cannot run on a SQLAlchemy connection in AUTOCOMMIT mode; "
                "use a connection with a transaction (the default)"
            )
        if not conn.in_transaction():
            # As any statement through SQLAlchemy would; the driver connection then runs in
            # the transaction SQLAlchemy knows about.
            conn.begin()
        _read_psycopg(raw, options, builder)
        return
    # Another driver (psycopg2, asyncpg, pg8000): the same statements one after the other.
    # Parameters go through SQLAlchemy's text(), which renders each driver's own parameter
    # style (asyncpg rejects the pyformat style); the catalog queries take none and have no
    # "%" or ":name" in them, so they go to the driver as they are.
    if conn.get_isolation_level() == "AUTOCOMMIT":
        raise ValueError(
            "take_snapshot() cannot run on a SQLAlchemy connection in AUTOCOMMIT mode; "
            "use a connection with a transaction (the default)"
        )
    old_path, server_version = conn.execute(_PIN_PATH_TEXT, {"path": _PINNED_SEARCH_PATH}).one()[:2]
    first_sql, second_sql = _query(int(server_version), *options)
    builder.add_first(conn.exec_driver_sql(first_sql).scalar_one())
    builder.add_second(conn.exec_driver_sql(second_sql).scalar_one())
    conn.execute(_RESTORE_PATH_TEXT, {"path": old_path})


_PIN_PATH_TEXT = sqlalchemy.text(
    "SELECT current_setting('search_path'), current_setting('server_version_num')::int, "
    "set_config('search_path', :path, true)"
)
_RESTORE_PATH_TEXT = sqlalchemy.text("SELECT set_config('search_path', :path, true)")


def _one(row: Any) -> tuple[Any, ...]:
    if row is None:  # pragma: no cover - every statement here returns a row
        raise RuntimeError("statement returned no row")
    return tuple(row)


# --------------------------------------------------------------------------------------------
# JSON from the server -> Snapshot
# --------------------------------------------------------------------------------------------

_CONSTRAINT_KINDS = {
    "p": "primary_key",
    "u": "unique",
    "c": "check",
    "f": "foreign_key",
    "x": "exclude",
}
_FK_ACTIONS = {
    "a": "no action",
    "r": "restrict",
    "c": "cascade",
    "n": "set null",
    "d": "set default",
}
_FK_MATCH = {"s": "simple", "f": "full", "p": "partial"}
_TRIGGER_ENABLED = {"O": "origin", "A": "always", "R": "replica", "D": "disabled"}
_POLICY_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
_PERSISTENCE = {"p": "permanent", "u": "unlogged", "t": "temporary"}
_FUNCTION_KINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}
_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}


def _grants(rows: list[list[Any]] | None, column: str | None = None) -> list[Grant]:
    return [Grant(g[0], g[1], bool(g[2]), column) for g in rows or ()]


#: Names of the system columns by attribute number (PostgreSQL 12 and later); a CHECK
#: constraint may name ``tableoid``.
_SYSTEM_COLUMNS = {-1: "ctid", -2: "xmin", -3: "cmin", -4: "xmax", -5: "cmax", -6: "tableoid"}
_IDENTITY = {"a": "always", "d": "by default"}
_NO_COLUMNS: dict[int, str] = {}


def _column_names(names: dict[int, str], attnums: list[int] | None) -> tuple[str, ...]:
    """Names of the columns ``attnums`` of a relation whose live columns are ``names``."""
    if not attnums:
        return ()
    try:
        return tuple(map(names.__getitem__, attnums))
    except KeyError:  # a system column (a CHECK constraint may name tableoid)
        return tuple(names[n] if n in names else _SYSTEM_COLUMNS[n] for n in attnums)


class _Builder:
    """Builds a :class:`Snapshot` from the JSON documents of the two catalog queries, given in
    order to :meth:`add_first` and :meth:`add_second`.

    Every row arrives as an array, in the order of the expressions in the query; constraint and
    index columns arrive as attribute numbers and are named here from the column rows."""

    def __init__(self, include_grants: bool) -> None:
        self.include_grants = include_grants
        self._result: Snapshot | None = None

    def add_first(self, text: str) -> None:
        self.first(json.loads(text))

    def add_second(self, text: str) -> None:
        self.second(json.loads(text))

    def snapshot(self) -> Snapshot:
        if self._result is None:  # pragma: no cover - a programming error
            raise RuntimeError("the catalog queries have not both been read")
        return self._result

    def first(self, data: dict[str, Any]) -> None:
        """Sequences, columns and constraints."""
        include_grants = self.include_grants
        # Identity columns take the options of their sequence; other sequences stand alone.
        identity: dict[tuple[int, int], SequenceOptions] = {}
        sequences: dict[int, Sequence] = {}
        identity_sequences: set[int] = set()
        for row in data["sequences"]:
            oid, schema, name, data_type, start, increment, min_value, max_value = row[:8]
            cache, cycle, owned_by, deptype, owner, owner_attnum, comment = row[8:15]
            if deptype == "i":
                identity[(owner, owner_attnum)] = SequenceOptions(
                    data_type, start, increment, min_value, max_value, cache, cycle
                )
                identity_sequences.add(oid)
                sequences.pop(oid, None)
            elif oid not in sequences and oid not in identity_sequences:
                sequences[oid] = Sequence(
                    schema,
                    name,
                    data_type,
                    start,
                    increment,
                    min_value,
                    max_value,
                    cache,
                    cycle,
                    owned_by,
                    comment,
                )

        columns: dict[int, list[Column]] = defaultdict(list)
        attnames: dict[int, dict[int, str]] = defaultdict(dict)
        grants: dict[int, list[Grant]] = defaultdict(list)
        for row in data["columns"]:
            relid, attnum, name, type_, notnull, expression, base_type = row[:7]
            collation, identity_kind, generated, comment = row[7:11]
            siblings = columns[relid]
            attnames[relid][attnum] = name
            siblings.append(
                _assemble(
                    Column,
                    {
                        "name": name,
                        "type": type_,
                        "nullable": not notnull,
                        "default": None if generated else canonical_expression(expression),
                        "position": len(siblings) + 1,  # rows come ordered by (attrelid, attnum)
                        "base_type": type_ if base_type is None else base_type,
                        "collation": collation,
                        "identity": _IDENTITY.get(identity_kind),
                        "identity_options": identity.get((relid, attnum))
                        if identity_kind
                        else None,
                        "generated": expression if generated else None,
                        "comment": comment,
                    },
                )
            )
            if include_grants and row[11]:
                grants[relid].extend(_grants(row[11], name))

        constraints: dict[int, list[Constraint]] = defaultdict(list)
        for row in data["constraints"]:
            relid, name, kind, definition, conkey, confrelid, referenced, confkey = row[:8]
            referenced_names, on_update, on_delete, match, deferrable, deferred = row[8:14]
            validated, index, comment = row[14:17]
            foreign = kind == "f"
            if foreign and referenced_names is None:
                referenced_names = _column_names(attnames.get(confrelid, _NO_COLUMNS), confkey)
            constraints[relid].append(
                _assemble(
                    Constraint,
                    {
                        "name": name,
                        "kind": _CONSTRAINT_KINDS[kind],
                        "definition": definition,
                        "columns": _column_names(attnames.get(relid, _NO_COLUMNS), conkey),
                        "referenced_table": referenced,
                        "referenced_columns": tuple(referenced_names) if foreign else (),
                        "on_update": _FK_ACTIONS[on_update] if foreign else None,
                        "on_delete": _FK_ACTIONS[on_delete] if foreign else None,
                        "match": _FK_MATCH[match] if foreign else None,
                        "deferrable": deferrable,
                        "initially_deferred": deferred,
                        "validated": validated,
                        "index": index,
                        "comment": comment,
                    },
                )
            )

        self._server_version: int = data["server_version"]
        self._schemas = tuple(Schema(s["name"], s["comment"]) for s in data["schemas"])
        self._sequences = sequences
        self._columns = columns
        self._attnames = attnames
        self._grants = grants
        self._constraints = constraints

    def second(self, data: dict[str, Any]) -> None:
        """Relations and everything attached to them, types, functions, extensions."""
        include_grants = self.include_grants
        server_version, schemas, sequences = self._server_version, self._schemas, self._sequences
        columns, attnames, grants = self._columns, self._attnames, self._grants
        constraints = self._constraints

        relnames = {r[0]: f"{r[1]}.{r[2]}" for r in data["relations"]}
        indexes: dict[int, list[Index]] = defaultdict(list)
        for row in data["indexes"]:
            relid, name, definition, quoted_name, indkey, nkeyatts, expressions = row[:7]
            method, unique, primary, nulls_not_distinct, predicate, valid = row[7:13]
            constraint, comment = row[13:15]
            prefix = ("CREATE UNIQUE INDEX " if unique else "CREATE INDEX ") + quoted_name + " "
            names = attnames.get(relid, _NO_COLUMNS)
            keys = indkey[:nkeyatts]
            if expressions is None:
                key_names = _column_names(names, keys)
            else:
                key_names = tuple(
                    expression if attnum == 0 else _column_names(names, [attnum])[0]
                    for attnum, expression in zip(keys, expressions, strict=True)
                )
            indexes[relid].append(
                _assemble(
                    Index,
                    {
                        "name": name,
                        "table": relnames[relid],
                        "definition": definition,
                        "signature": definition[len(prefix) :]
                        if definition.startswith(prefix)
                        else definition,
                        "columns": key_names,
                        "include": _column_names(names, indkey[nkeyatts:]),
                        "method": method,
                        "unique": unique,
                        "primary": primary,
                        "nulls_not_distinct": nulls_not_distinct,
                        "predicate": predicate,
                        "valid": valid,
                        "constraint": constraint,
                        "comment": comment,
                    },
                )
            )

        triggers: dict[int, list[Trigger]] = defaultdict(list)
        for relid, name, definition, enabled, comment in data["triggers"]:
            triggers[relid].append(
                Trigger(
                    name=name,
                    table=relnames[relid],
                    definition=definition,
                    enabled=_TRIGGER_ENABLED[enabled],  # type: ignore[arg-type]
                    comment=comment,
                )
            )
        policies: dict[int, list[Policy]] = defaultdict(list)
        for relid, name, command, permissive, roles, using, with_check, comment in data["policies"]:
            policies[relid].append(
                Policy(
                    name=name,
                    table=relnames[relid],
                    command=_POLICY_COMMANDS[command],  # type: ignore[arg-type]
                    permissive=permissive,
                    roles=tuple(roles),
                    using=using,
                    with_check=with_check,
                    comment=comment,
                )
            )

        tables: list[Table] = []
        views: list[View] = []
        for r in data["relations"]:
            oid, schema, name, relkind, persistence, rls_enabled, rls_forced, options = r[:8]
            partition_key, partition_bound, parents, is_partition, view_definition = r[8:13]
            comment = r[13]
            relation_grants = _grants(r[14]) if include_grants else []
            relation_grants += grants.get(oid, ())
            if relkind in ("v", "m"):
                views.append(
                    View(
                        schema=schema,
                        name=name,
                        definition=view_definition,
                        materialized=relkind == "m",
                        columns=tuple(columns.get(oid, ())),
                        indexes=tuple(indexes.get(oid, ())),
                        triggers=tuple(triggers.get(oid, ())),
                        grants=tuple(relation_grants),
                        options=tuple(options or ()),
                        comment=comment,
                    )
                )
                continue
            parents = tuple(parents or ())
            tables.append(
                Table(
                    schema=schema,
                    name=name,
                    columns=tuple(columns.get(oid, ())),
                    constraints=tuple(constraints.get(oid, ())),
                    indexes=tuple(indexes.get(oid, ())),
                    triggers=tuple(triggers.get(oid, ())),
                    policies=tuple(policies.get(oid, ())),
                    grants=tuple(relation_grants),
                    partitioned=relkind == "p",
                    persistence=_PERSISTENCE[persistence],  # type: ignore[arg-type]
                    partition_key=partition_key,
                    partition_of=parents[0] if is_partition and parents else None,
                    partition_bound=partition_bound,
                    inherits=() if is_partition else parents,
                    rls_enabled=rls_enabled,
                    rls_forced=rls_forced,
                    options=tuple(options or ()),
                    comment=comment,
                )
            )

        enums: list[Enum] = []
        domains: list[Domain] = []
        composites: list[CompositeType] = []
        for t in data["types"]:
            if t["typtype"] == "e":
                enums.append(Enum(t["schema"], t["name"], tuple(t["labels"]), t["comment"]))
            elif t["typtype"] == "d":
                domains.append(
                    Domain(
                        schema=t["schema"],
                        name=t["name"],
                        base_type=t["base_type"],
                        nullable=t["nullable"],
                        default=canonical_expression(t["default"]),
                        collation=t["collation"],
                        constraints=tuple(DomainConstraint(*c) for c in t["constraints"] or ()),
                        comment=t["comment"],
                    )
                )
            else:
                attributes = tuple(
                    CompositeAttribute(c.name, c.type, c.collation)
                    for c in columns.get(t["relid"], ())
                )
                composites.append(CompositeType(t["schema"], t["name"], attributes, t["comment"]))

        self._result = Snapshot(
            server_version=server_version,
            schemas=schemas,
            tables=tuple(tables),
            views=tuple(views),
            sequences=tuple(sequences.values()),
            enums=tuple(enums),
            domains=tuple(domains),
            composite_types=tuple(composites),
            functions=tuple(
                Function(
                    schema=f["schema"],
                    name=f["name"],
                    arguments=f["arguments"],
                    kind=_FUNCTION_KINDS[f["kind"]],  # type: ignore[arg-type]
                    result=f["result"],
                    language=f["language"],
                    volatility=_VOLATILITY[f["volatility"]],  # type: ignore[arg-type]
                    security_definer=f["security_definer"],
                    strict=f["strict"],
                    definition=f["definition"],
                    body=f["body"],
                    comment=f["comment"],
                )
                for f in data["functions"]
            ),
            extensions=tuple(Extension(**e) for e in data["extensions"]),
            grants_included=include_grants,
        )


def build_snapshot(data: dict[str, Any], *, include_grants: bool = False) -> Snapshot:
    """Build a :class:`Snapshot` from the JSON documents of both catalog queries merged into
    one mapping."""
    builder = _Builder(include_grants)
    builder.first(data)
    builder.second(data)
    return builder.snapshot()
