"""Indexes of tables and materialized views (including those that implement a constraint)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pytest_schemaguard.snapshot.introspect.tables import NO_COLUMNS, column_names
from pytest_schemaguard.snapshot.model import Index, _assemble

__all__ = ["INDEXES", "read_indexes"]

#: ``indexes`` section (second query).  Key columns come as attribute numbers, expressions as
#: text (``NULL`` for a plain column).
INDEXES = r"""
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
        d.description) ORDER BY i.indrelid, i.indexrelid), '[]')
    FROM pg_index i
    JOIN %(own_rel)s rel ON rel.oid = i.indrelid
    LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                               AND con.contype IN ('p', 'u', 'x')
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
    LEFT JOIN reldesc d ON d.objoid = i.indexrelid AND d.objsubid = 0"""


def read_indexes(
    rows: list[list[Any]], attnames: dict[int, dict[int, str]], relnames: dict[int, str]
) -> dict[int, list[Index]]:
    """The indexes of each relation, by relation oid."""
    indexes: dict[int, list[Index]] = defaultdict(list)
    for row in rows:
        relid, name, definition, quoted_name, indkey, nkeyatts, expressions = row[:7]
        method, unique, primary, nulls_not_distinct, predicate, valid = row[7:13]
        constraint, comment = row[13:15]
        prefix = ("CREATE UNIQUE INDEX " if unique else "CREATE INDEX ") + quoted_name + " "
        names = attnames.get(relid, NO_COLUMNS)
        keys = indkey[:nkeyatts]
        if expressions is None:
            key_names = column_names(names, keys)
        else:
            key_names = tuple(
                expression if attnum == 0 else column_names(names, [attnum])[0]
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
                    "include": column_names(names, indkey[nkeyatts:]),
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
    return indexes
