"""Table constraints: primary key, unique, check, foreign key, exclude."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pytest_schemaguard.snapshot.introspect.tables import NO_COLUMNS, column_names
from pytest_schemaguard.snapshot.model import Constraint, _assemble

__all__ = ["CONSTRAINTS", "read_constraints"]

#: ``constraints`` section (first query).  Columns come as attribute numbers; the referenced
#: columns of a foreign key to a table outside the snapshot come as names.
CONSTRAINTS = r"""
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
        dc.description) ORDER BY con.conrelid, con.oid), '[]')
    FROM pg_constraint con
    JOIN %(own_rel)s rel ON rel.oid = con.conrelid
    LEFT JOIN rel fr ON con.contype = 'f' AND fr.oid = con.confrelid
    LEFT JOIN pg_class fc ON con.contype = 'f' AND fc.oid = con.confrelid
    LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
    LEFT JOIN pg_class ic ON ic.oid = con.conindid
    LEFT JOIN pg_description dc ON dc.objoid = con.oid AND dc.classoid = 'pg_constraint'::regclass
        AND dc.objsubid = 0 AND dc.objoid >= %(first_user_oid)s
    WHERE con.contype IN ('p', 'u', 'c', 'f', 'x')"""

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


def read_constraints(
    rows: list[list[Any]], attnames: dict[int, dict[int, str]]
) -> dict[int, list[Constraint]]:
    """The constraints of each table, by relation oid."""
    constraints: dict[int, list[Constraint]] = defaultdict(list)
    for row in rows:
        relid, name, kind, definition, conkey, confrelid, referenced, confkey = row[:8]
        referenced_names, on_update, on_delete, match, deferrable, deferred = row[8:14]
        validated, index, comment = row[14:17]
        foreign = kind == "f"
        if foreign and referenced_names is None:
            referenced_names = column_names(attnames.get(confrelid, NO_COLUMNS), confkey)
        constraints[relid].append(
            _assemble(
                Constraint,
                {
                    "name": name,
                    "kind": _CONSTRAINT_KINDS[kind],
                    "definition": definition,
                    "columns": column_names(attnames.get(relid, NO_COLUMNS), conkey),
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
    return constraints
