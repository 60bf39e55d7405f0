"""Indexes of tables and materialized views: paired by name, then by definition.  An index that
implements a constraint is reported through its constraint, not here."""

from __future__ import annotations

from pytest_schemaguard.snapshot.compare.differences import Collector
from pytest_schemaguard.snapshot.compare.matching import compare_fields, match, renamed
from pytest_schemaguard.snapshot.model import Index, qualify

__all__ = ["compare_indexes"]

_INDEX_FIELDS = (
    "columns",
    "include",
    "method",
    "unique",
    "nulls_not_distinct",
    "predicate",
    "valid",
    "comment",
)


def compare_indexes(
    out: Collector,
    parent_kind: str,
    parent: str,
    left: tuple[Index, ...],
    right: tuple[Index, ...],
) -> None:
    # Indexes implementing a constraint are reported through the constraint.
    pairs, by_definition, lo, ro = match(
        [i for i in left if i.constraint is None],
        [i for i in right if i.constraint is None],
        lambda i: i.name,
        lambda i: i.signature,
    )
    sub = {"parent": parent, "parent_kind": parent_kind}
    for i in lo:
        out.presence("index", qualify(parent, i.name), i, None, **sub)
    for i in ro:
        out.presence("index", qualify(parent, i.name), None, i, **sub)
    for ia, ib in by_definition:
        renamed(out, "index", qualify(parent, ia.name), ia.name, ib.name, **sub)
        compare_fields(out, "index", qualify(parent, ia.name), ia, ib, ("comment",), **sub)
    for ia, ib in pairs:
        if ia.signature != ib.signature or ia != ib:
            compare_fields(
                out,
                "index",
                qualify(parent, ia.name),
                ia,
                ib,
                _INDEX_FIELDS,
                fallback="definition",
                **sub,
            )
