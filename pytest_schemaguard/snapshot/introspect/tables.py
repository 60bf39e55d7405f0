"""Relations (tables, partitioned tables, views, materialized views) and their columns.

Columns are read in the first query: constraints and indexes name their columns by attribute
number, and :func:`column_names` turns those numbers into names.  The relations, read in the
second, gather what the other families found on them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pytest_schemaguard.snapshot.introspect.access import grants as read_grants
from pytest_schemaguard.snapshot.model import (
    Column,
    Constraint,
    Grant,
    Index,
    Policy,
    SequenceOptions,
    Table,
    Trigger,
    View,
    _assemble,
    canonical_expression,
)

__all__ = ["COLUMNS", "NO_COLUMNS", "RELATIONS", "column_names", "read_columns", "read_relations"]

#: ``columns`` section (first query): the live columns of tables, views and composite types,
#: ordered by (relation, attribute number).
COLUMNS = r"""
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
    JOIN %(own_rel)s rel ON rel.oid = a.attrelid AND rel.relkind IN ('r', 'p', 'v', 'm', 'c')
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> t.typcollation
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
    LEFT JOIN reldesc d ON d.objoid = a.attrelid AND d.objsubid = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped"""

#: ``relations`` section (second query): tables and views.
RELATIONS = r"""
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
    ) ORDER BY rel.oid), '[]')
    FROM %(own_rel)s rel
    LEFT JOIN reldesc d ON d.objoid = rel.oid AND d.objsubid = 0
    LEFT JOIN (
        SELECT i.inhrelid, array_agg(pn.nspname || '.' || pc.relname ORDER BY i.inhseqno) AS parents
        FROM pg_inherits i
        JOIN pg_class pc ON pc.oid = i.inhparent
        JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        GROUP BY i.inhrelid
    ) inh ON inh.inhrelid = rel.oid
    WHERE rel.relkind IN ('r', 'p', 'v', 'm')"""

#: Names of the system columns by attribute number (PostgreSQL 12 and later); a CHECK
#: constraint may name ``tableoid``.
_SYSTEM_COLUMNS = {-1: "ctid", -2: "xmin", -3: "cmin", -4: "xmax", -5: "cmax", -6: "tableoid"}
_IDENTITY = {"a": "always", "d": "by default"}
_PERSISTENCE = {"p": "permanent", "u": "unlogged", "t": "temporary"}
NO_COLUMNS: dict[int, str] = {}


def column_names(names: dict[int, str], attnums: list[int] | None) -> tuple[str, ...]:
    """Names of the columns ``attnums`` of a relation whose live columns are ``names``."""
    if not attnums:
        return ()
    try:
        return tuple(map(names.__getitem__, attnums))
    except KeyError:  # a system column (a CHECK constraint may name tableoid)
        return tuple(names[n] if n in names else _SYSTEM_COLUMNS[n] for n in attnums)


def read_columns(
    rows: list[list[Any]],
    identity: dict[tuple[int, int], SequenceOptions],
    include_grants: bool,
) -> tuple[dict[int, list[Column]], dict[int, dict[int, str]], dict[int, list[Grant]]]:
    """Columns by relation oid; their names by relation oid and attribute number; column grants
    by relation oid."""
    columns: dict[int, list[Column]] = defaultdict(list)
    attnames: dict[int, dict[int, str]] = defaultdict(dict)
    grants: dict[int, list[Grant]] = defaultdict(list)
    for row in rows:
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
                    "identity_options": identity.get((relid, attnum)) if identity_kind else None,
                    "generated": expression if generated else None,
                    "comment": comment,
                },
            )
        )
        if include_grants and row[11]:
            grants[relid].extend(read_grants(row[11], name))
    return columns, attnames, grants


def read_relations(
    rows: list[list[Any]],
    *,
    include_grants: bool,
    columns: dict[int, list[Column]],
    column_grants: dict[int, list[Grant]],
    constraints: dict[int, list[Constraint]],
    indexes: dict[int, list[Index]],
    triggers: dict[int, list[Trigger]],
    policies: dict[int, list[Policy]],
) -> tuple[list[Table], list[View]]:
    """Tables and views, each with what was found on it (by relation oid)."""
    tables: list[Table] = []
    views: list[View] = []
    for r in rows:
        oid, schema, name, relkind, persistence, rls_enabled, rls_forced, options = r[:8]
        partition_key, partition_bound, parents, is_partition, view_definition = r[8:13]
        comment = r[13]
        relation_grants = read_grants(r[14]) if include_grants else []
        relation_grants += column_grants.get(oid, ())
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
    return tables, views
