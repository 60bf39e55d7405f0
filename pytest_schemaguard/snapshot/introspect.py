"""Read a :class:`~pytest_schemaguard.snapshot.model.Snapshot` from the PostgreSQL catalog.

One catalog query builds the whole picture as JSON on the server (no query per object); two tiny
statements around it pin ``search_path`` for the duration of the snapshot, so that the texts the
server prints (``format_type``, ``pg_get_expr``, ``pg_get_constraintdef``...) are always fully
schema-qualified, whatever ``search_path`` the caller's connection has.  The snapshot runs inside
the caller's current transaction (it sees uncommitted DDL) and leaves it as it found it.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from collections.abc import Sequence as SequenceABC
from typing import Any

import psycopg

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
    canonical_expression,
)

__all__ = ["DEFAULT_EXCLUDED_TABLES", "take_snapshot"]

#: Tables left out unless asked for (matched by name in every schema).
DEFAULT_EXCLUDED_TABLES: tuple[str, ...] = ("alembic_version",)

#: ``search_path`` during a snapshot: nothing user-defined is visible, so every user object the
#: server prints is schema-qualified (as in ``pg_dump`` output).
_PINNED_SEARCH_PATH = "pg_catalog"


# --------------------------------------------------------------------------------------------
# The catalog query
# --------------------------------------------------------------------------------------------

_QUERY = r"""
WITH
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
),
qualname AS (
    SELECT c.oid, n.nspname || '.' || c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
)
SELECT json_build_object(
'server_version', current_setting('server_version_num')::int,
'schemas', (
    SELECT coalesce(json_agg(json_build_object(
        'name', ns.nspname,
        'comment', dn.description)), '[]')
    FROM ns
    LEFT JOIN pg_description dn ON dn.objoid = ns.oid AND dn.classoid = 'pg_namespace'::regclass
        AND dn.objsubid = 0),
'relations', (
    SELECT coalesce(json_agg(json_build_object(
        'oid', rel.oid,
        'schema', rel.nspname,
        'name', rel.relname,
        'relkind', rel.relkind,
        'persistence', rel.relpersistence,
        'rls_enabled', rel.relrowsecurity,
        'rls_forced', rel.relforcerowsecurity,
        'options', coalesce(rel.reloptions, '{}'),
        'partition_key', CASE WHEN rel.relkind = 'p' THEN pg_get_partkeydef(rel.oid) END,
        'partition_bound', CASE WHEN rel.relispartition
                                THEN pg_get_expr(rel.relpartbound, rel.oid) END,
        'parents', coalesce(inh.parents, '{}'),
        'is_partition', rel.relispartition,
        'view_definition', CASE WHEN rel.relkind IN ('v', 'm')
                                THEN pg_get_viewdef(rel.oid) END,
        'comment', d.description
        %(relation_grants)s
    )), '[]')
    FROM rel
    LEFT JOIN reldesc d ON d.objoid = rel.oid AND d.objsubid = 0
    LEFT JOIN (
        SELECT i.inhrelid, array_agg(q.name ORDER BY i.inhseqno) AS parents
        FROM pg_inherits i JOIN qualname q ON q.oid = i.inhparent
        GROUP BY i.inhrelid
    ) inh ON inh.inhrelid = rel.oid
    WHERE rel.relkind IN ('r', 'p', 'v', 'm')),
'columns', (
    SELECT coalesce(json_agg(json_build_array(
        a.attrelid,
        a.attname,
        format_type(a.atttypid, a.atttypmod),
        NOT a.attnotnull,
        CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
        format_type(a.atttypid, NULL),
        CASE WHEN a.attcollation <> t.typcollation THEN
            CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname)
                 ELSE quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END
        END,
        CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
        CASE WHEN a.attidentity <> '' THEN json_build_array(
            format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
            s.seqcache, s.seqcycle) END,
        CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
        d.description
        %(column_grants)s
    ) ORDER BY a.attrelid, a.attnum), '[]')
    FROM pg_attribute a
    JOIN rel ON rel.oid = a.attrelid AND rel.relkind IN ('r', 'p', 'v', 'm', 'c')
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
    LEFT JOIN pg_depend sd ON a.attidentity <> '' AND sd.deptype = 'i'
                           AND sd.refclassid = 'pg_class'::regclass
                           AND sd.refobjid = a.attrelid AND sd.refobjsubid = a.attnum
                           AND sd.classid = 'pg_class'::regclass
    LEFT JOIN pg_sequence s ON s.seqrelid = sd.objid
    LEFT JOIN reldesc d ON d.objoid = a.attrelid AND d.objsubid = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped),
'constraints', (
    SELECT coalesce(json_agg(json_build_object(
        'relid', con.conrelid,
        'name', con.conname,
        'kind', con.contype,
        'definition', pg_get_constraintdef(con.oid),
        'columns', ARRAY(
            SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, i)
            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
            ORDER BY k.i),
        'referenced_table', q.name,
        'referenced_columns', ARRAY(
            SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(attnum, i)
            JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
            ORDER BY k.i),
        'on_update', CASE WHEN con.contype = 'f' THEN con.confupdtype END,
        'on_delete', CASE WHEN con.contype = 'f' THEN con.confdeltype END,
        'match', CASE WHEN con.contype = 'f' THEN con.confmatchtype END,
        'deferrable', con.condeferrable,
        'initially_deferred', con.condeferred,
        'validated', con.convalidated,
        'index', CASE WHEN con.contype IN ('p', 'u', 'x') THEN ic.relname END,
        'comment', dc.description)), '[]')
    FROM pg_constraint con
    LEFT JOIN pg_description dc ON dc.objoid = con.oid AND dc.classoid = 'pg_constraint'::regclass
        AND dc.objsubid = 0
    JOIN rel ON rel.oid = con.conrelid
    LEFT JOIN qualname q ON con.contype = 'f' AND q.oid = con.confrelid
    LEFT JOIN pg_class ic ON ic.oid = con.conindid
    WHERE con.contype IN ('p', 'u', 'c', 'f', 'x')),
'indexes', (
    SELECT coalesce(json_agg(json_build_object(
        'relid', i.indrelid,
        'name', ic.relname,
        'definition', x.def,
        'prefix', 'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END
                  || 'INDEX ' || quote_ident(ic.relname) || ' ',
        'columns', ARRAY(
            SELECT coalesce(a.attname, pg_get_indexdef(i.indexrelid, k.n::int, true))
            FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
            LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE k.n <= i.indnkeyatts
            ORDER BY k.n),
        'include', ARRAY(
            SELECT a.attname
            FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE k.n > i.indnkeyatts
            ORDER BY k.n),
        'method', am.amname,
        'unique', i.indisunique,
        'primary', i.indisprimary,
        'nulls_not_distinct', %(nulls_not_distinct)s,
        'predicate', pg_get_expr(i.indpred, i.indrelid),
        'valid', i.indisvalid,
        'constraint', con.conname,
        'comment', d.description)), '[]')
    FROM pg_index i
    JOIN rel ON rel.oid = i.indrelid
    LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                               AND con.contype IN ('p', 'u', 'x')
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
    CROSS JOIN LATERAL (SELECT pg_get_indexdef(i.indexrelid) AS def) x
    LEFT JOIN reldesc d ON d.objoid = i.indexrelid AND d.objsubid = 0),
'triggers', (
    SELECT coalesce(json_agg(json_build_object(
        'relid', tg.tgrelid,
        'name', tg.tgname,
        'definition', pg_get_triggerdef(tg.oid),
        'enabled', tg.tgenabled,
        'comment', dt.description)), '[]')
    FROM pg_trigger tg
    LEFT JOIN pg_description dt ON dt.objoid = tg.oid AND dt.classoid = 'pg_trigger'::regclass
        AND dt.objsubid = 0
    JOIN rel ON rel.oid = tg.tgrelid
    WHERE NOT tg.tgisinternal AND tg.tgparentid = 0),
'policies', (
    SELECT coalesce(json_agg(json_build_object(
        'relid', p.polrelid,
        'name', p.polname,
        'command', p.polcmd,
        'permissive', p.polpermissive,
        'roles', ARRAY(
            SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
            FROM unnest(p.polroles) r ORDER BY 1),
        'using', pg_get_expr(p.polqual, p.polrelid),
        'with_check', pg_get_expr(p.polwithcheck, p.polrelid),
        'comment', dp.description)), '[]')
    FROM pg_policy p
    LEFT JOIN pg_description dp ON dp.objoid = p.oid AND dp.classoid = 'pg_policy'::regclass
        AND dp.objsubid = 0
    JOIN rel ON rel.oid = p.polrelid),
'sequences', (
    SELECT coalesce(json_agg(json_build_object(
        'schema', rel.nspname,
        'name', rel.relname,
        'data_type', format_type(s.seqtypid, NULL),
        'start', s.seqstart,
        'increment', s.seqincrement,
        'min_value', s.seqmin,
        'max_value', s.seqmax,
        'cache', s.seqcache,
        'cycle', s.seqcycle,
        'owned_by', own.name,
        'comment', d.description)), '[]')
    FROM rel
    JOIN pg_sequence s ON s.seqrelid = rel.oid
    LEFT JOIN reldesc d ON d.objoid = rel.oid AND d.objsubid = 0
    LEFT JOIN LATERAL (
        SELECT on_.nspname || '.' || oc.relname || '.' || oa.attname AS name,
               dep.deptype
        FROM pg_depend dep
        JOIN pg_class oc ON oc.oid = dep.refobjid
        JOIN pg_namespace on_ ON on_.oid = oc.relnamespace
        JOIN pg_attribute oa ON oa.attrelid = dep.refobjid AND oa.attnum = dep.refobjsubid
        WHERE dep.classid = 'pg_class'::regclass AND dep.objid = rel.oid AND dep.objsubid = 0
          AND dep.refclassid = 'pg_class'::regclass AND dep.refobjsubid > 0
          AND dep.deptype IN ('a', 'i')
        LIMIT 1
    ) own ON true
    WHERE rel.relkind = 'S' AND own.deptype IS DISTINCT FROM 'i'),
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
        'grants', (
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
) -> str:
    """The catalog query for a server version (the SQL differs slightly between majors)."""
    parts = {
        "schema_filter": (
            "true" if schemas is None else f"n.nspname = ANY ({_text_array(schemas)})"
        ),
        "exclude_tables": _text_array(exclude_tables),
        "relation_grants": _RELATION_GRANTS if include_grants else "",
        "column_grants": _COLUMN_GRANTS if include_grants else "",
        "nulls_not_distinct": "i.indnullsnotdistinct" if server_version >= 150000 else "false",
    }
    sql = _QUERY
    for key, value in parts.items():
        sql = sql.replace(f"%({key})s", value)
    return sql


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
    with _executor(conn) as execute:
        old_path, server_version, _ = execute(
            "SELECT current_setting('search_path'), current_setting('server_version_num')::int, "
            "set_config('search_path', %(path)s, true)",
            {"path": _PINNED_SEARCH_PATH},
            False,
        )
        sql = _query(
            int(server_version),
            include_grants,
            tuple(schemas) if schemas is not None else None,
            tuple(exclude_tables),
        )
        (text,) = execute(sql, None, True)
        execute("SELECT set_config('search_path', %(path)s, true)", {"path": old_path}, False)
    return build_snapshot(json.loads(text), include_grants=include_grants)


_Execute = Callable[[str, dict[str, Any] | None, bool], tuple[Any, ...]]


def _psycopg_execute(
    raw: psycopg.Connection[Any], sql: str, params: dict[str, Any] | None, prepare: bool
) -> tuple[Any, ...]:
    # The catalog query is prepared (planning it costs more than running it), unless the
    # connection has prepared statements switched off (e.g. behind a transaction-mode pooler).
    with raw.cursor() as cur:
        cur.execute(
            sql, params, prepare=True if prepare and raw.prepare_threshold is not None else None
        )
        row = cur.fetchone()
    if row is None:  # pragma: no cover - the statements always return a row
        raise RuntimeError("catalog query returned no row")
    return tuple(row)


@contextlib.contextmanager
def _executor(conn: Any) -> Iterator[_Execute]:
    """Yield ``execute(sql, params, prepare) -> first row`` running in ``conn``'s current
    transaction."""
    if isinstance(conn, psycopg.Connection):
        psy = conn

        def run_psycopg(sql: str, params: dict[str, Any] | None, prepare: bool) -> tuple[Any, ...]:
            return _psycopg_execute(psy, sql, params, prepare)

        if psy.autocommit:
            # Each statement would be its own transaction and the transaction-local
            # search_path would not reach the catalog query: use one short transaction.
            with psy.transaction():
                yield run_psycopg
        else:
            yield run_psycopg
        return
    if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy Connection
        if conn.get_isolation_level() == "AUTOCOMMIT":
            raise ValueError(
                "take_snapshot() cannot run on a SQLAlchemy connection in AUTOCOMMIT mode; "
                "use a connection with a transaction (the default)"
            )

        def run_sqlalchemy(
            sql: str, params: dict[str, Any] | None, prepare: bool
        ) -> tuple[Any, ...]:
            if prepare:
                # The first statement went through SQLAlchemy, so its transaction has begun;
                # the driver connection runs in that same transaction.
                raw = conn.connection.driver_connection
                if isinstance(raw, psycopg.Connection):
                    return _psycopg_execute(raw, sql, params, prepare)
            return tuple(conn.exec_driver_sql(sql, params).one())

        yield run_sqlalchemy
        return
    raise TypeError(
        "take_snapshot() needs a SQLAlchemy Connection or a psycopg 3 Connection, "
        f"got {type(conn).__name__}"
    )


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


def build_snapshot(data: dict[str, Any], *, include_grants: bool = False) -> Snapshot:
    """Turn the JSON document produced by the catalog query into a :class:`Snapshot`."""
    by_rel: dict[str, dict[int, list[Any]]] = {
        kind: defaultdict(list)
        for kind in ("columns", "constraints", "indexes", "triggers", "policies", "grants")
    }
    for row in data["columns"]:
        relid, name, type_, nullable, default, base_type = row[:6]
        collation, identity, identity_seq, generated, comment = row[6:11]
        siblings = by_rel["columns"][relid]
        position = len(siblings) + 1  # rows come ordered by (attrelid, attnum)
        siblings.append(
            Column(
                name=name,
                type=type_,
                nullable=nullable,
                default=canonical_expression(default),
                position=position,
                base_type=base_type,
                collation=collation,
                identity=identity,
                identity_options=SequenceOptions(*identity_seq) if identity_seq else None,
                generated=generated,
                comment=comment,
            )
        )
        if include_grants and row[11]:
            by_rel["grants"][relid].extend(_grants(row[11], name))
    for row in data["constraints"]:
        by_rel["constraints"][row["relid"]].append(
            Constraint(
                name=row["name"],
                kind=_CONSTRAINT_KINDS[row["kind"]],  # type: ignore[arg-type]
                definition=row["definition"],
                columns=tuple(row["columns"]),
                referenced_table=row["referenced_table"],
                referenced_columns=tuple(row["referenced_columns"]),
                on_update=_FK_ACTIONS.get(row["on_update"]),
                on_delete=_FK_ACTIONS.get(row["on_delete"]),
                match=_FK_MATCH.get(row["match"]),
                deferrable=row["deferrable"],
                initially_deferred=row["initially_deferred"],
                validated=row["validated"],
                index=row["index"],
                comment=row["comment"],
            )
        )
    relnames = {r["oid"]: f"{r['schema']}.{r['name']}" for r in data["relations"]}
    for row in data["indexes"]:
        definition: str = row["definition"]
        prefix: str = row["prefix"]
        signature = definition[len(prefix) :] if definition.startswith(prefix) else definition
        by_rel["indexes"][row["relid"]].append(
            Index(
                name=row["name"],
                table=relnames[row["relid"]],
                definition=definition,
                signature=signature,
                columns=tuple(row["columns"]),
                include=tuple(row["include"]),
                method=row["method"],
                unique=row["unique"],
                primary=row["primary"],
                nulls_not_distinct=row["nulls_not_distinct"],
                predicate=row["predicate"],
                valid=row["valid"],
                constraint=row["constraint"],
                comment=row["comment"],
            )
        )
    for row in data["triggers"]:
        by_rel["triggers"][row["relid"]].append(
            Trigger(
                name=row["name"],
                table=relnames[row["relid"]],
                definition=row["definition"],
                enabled=_TRIGGER_ENABLED[row["enabled"]],  # type: ignore[arg-type]
                comment=row["comment"],
            )
        )
    for row in data["policies"]:
        by_rel["policies"][row["relid"]].append(
            Policy(
                name=row["name"],
                table=relnames[row["relid"]],
                command=_POLICY_COMMANDS[row["command"]],  # type: ignore[arg-type]
                permissive=row["permissive"],
                roles=tuple(row["roles"]),
                using=row["using"],
                with_check=row["with_check"],
                comment=row["comment"],
            )
        )

    tables: list[Table] = []
    views: list[View] = []
    for r in data["relations"]:
        oid = r["oid"]
        grants = _grants(r.get("grants")) + by_rel["grants"].get(oid, [])
        if r["relkind"] in ("v", "m"):
            views.append(
                View(
                    schema=r["schema"],
                    name=r["name"],
                    definition=r["view_definition"],
                    materialized=r["relkind"] == "m",
                    columns=tuple(by_rel["columns"].get(oid, ())),
                    indexes=tuple(by_rel["indexes"].get(oid, ())),
                    triggers=tuple(by_rel["triggers"].get(oid, ())),
                    grants=tuple(grants),
                    options=tuple(r["options"]),
                    comment=r["comment"],
                )
            )
            continue
        parents = tuple(r["parents"])
        is_partition = r["is_partition"]
        tables.append(
            Table(
                schema=r["schema"],
                name=r["name"],
                columns=tuple(by_rel["columns"].get(oid, ())),
                constraints=tuple(by_rel["constraints"].get(oid, ())),
                indexes=tuple(by_rel["indexes"].get(oid, ())),
                triggers=tuple(by_rel["triggers"].get(oid, ())),
                policies=tuple(by_rel["policies"].get(oid, ())),
                grants=tuple(grants),
                partitioned=r["relkind"] == "p",
                persistence=_PERSISTENCE[r["persistence"]],  # type: ignore[arg-type]
                partition_key=r["partition_key"],
                partition_of=parents[0] if is_partition and parents else None,
                partition_bound=r["partition_bound"],
                inherits=() if is_partition else parents,
                rls_enabled=r["rls_enabled"],
                rls_forced=r["rls_forced"],
                options=tuple(r["options"]),
                comment=r["comment"],
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
                for c in by_rel["columns"].get(t["relid"], ())
            )
            composites.append(CompositeType(t["schema"], t["name"], attributes, t["comment"]))

    return Snapshot(
        server_version=data["server_version"],
        schemas=tuple(Schema(s["name"], s["comment"]) for s in data["schemas"]),
        tables=tuple(tables),
        views=tuple(views),
        sequences=tuple(Sequence(**s) for s in data["sequences"]),
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
