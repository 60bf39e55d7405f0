"""Types and sequences: enums, domains, composite types; sequences, whose options an identity
column takes as its own."""

from __future__ import annotations

from typing import Any

from pytest_schemaguard.snapshot.model import (
    Column,
    CompositeAttribute,
    CompositeType,
    Domain,
    DomainConstraint,
    Enum,
    Sequence,
    SequenceOptions,
    canonical_expression,
)

__all__ = ["SEQUENCES", "TYPES", "read_sequences", "read_types"]

#: ``sequences`` section (first query), with the column that owns each sequence, if any.
SEQUENCES = r"""
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
        d.description) ORDER BY rel.oid, dep.deptype), '[]')
    FROM %(own_rel)s rel
    JOIN pg_sequence s ON s.seqrelid = rel.oid
    LEFT JOIN reldesc d ON d.objoid = rel.oid AND d.objsubid = 0
    LEFT JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = rel.oid
        AND dep.objsubid = 0 AND dep.refclassid = 'pg_class'::regclass
        AND dep.refobjsubid > 0 AND dep.deptype IN ('a', 'i')
    LEFT JOIN pg_class oc ON oc.oid = dep.refobjid
    LEFT JOIN pg_namespace on_ ON on_.oid = oc.relnamespace
    LEFT JOIN pg_attribute oa ON oa.attrelid = dep.refobjid AND oa.attnum = dep.refobjsubid
    WHERE rel.relkind = 'S'"""

#: ``types`` section (second query): enums, domains and free-standing composite types.
TYPES = r"""
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
        'comment', dty.description) ORDER BY t.oid), '[]')
    FROM pg_type t
    LEFT JOIN pg_description dty ON dty.objoid = t.oid AND dty.classoid = 'pg_type'::regclass
        AND dty.objsubid = 0
    JOIN ns ON ns.oid = t.typnamespace
    LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
    LEFT JOIN pg_collation co ON co.oid = t.typcollation
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
    LEFT JOIN rel ON rel.oid = t.typrelid
    WHERE t.oid >= %(first_user_oid)s
      AND (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND rel.relkind = 'c'))
      AND NOT EXISTS (
          SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid)"""


def read_sequences(
    rows: list[list[Any]],
) -> tuple[dict[int, Sequence], dict[tuple[int, int], SequenceOptions]]:
    """The sequences that stand alone, by oid; and the options of identity columns, by
    (relation oid, attribute number)."""
    # Identity columns take the options of their sequence; other sequences stand alone.
    identity: dict[tuple[int, int], SequenceOptions] = {}
    sequences: dict[int, Sequence] = {}
    identity_sequences: set[int] = set()
    for row in rows:
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
    return sequences, identity


def read_types(
    rows: list[dict[str, Any]], columns: dict[int, list[Column]]
) -> tuple[list[Enum], list[Domain], list[CompositeType]]:
    """Enums, domains and composite types (whose attributes come from the column rows)."""
    enums: list[Enum] = []
    domains: list[Domain] = []
    composites: list[CompositeType] = []
    for t in rows:
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
                CompositeAttribute(c.name, c.type, c.collation) for c in columns.get(t["relid"], ())
            )
            composites.append(CompositeType(t["schema"], t["name"], attributes, t["comment"]))
    return enums, domains, composites
