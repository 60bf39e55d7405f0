"""Table constraints (primary key, unique, foreign key, check, exclude): paired by name, then by
definition, since PostgreSQL invents the names of constraints declared without one."""

from __future__ import annotations

import dataclasses

from pytest_schemaguard.snapshot.compare.differences import Collector
from pytest_schemaguard.snapshot.compare.matching import compare_fields, match, renamed
from pytest_schemaguard.snapshot.model import Constraint, qualify

__all__ = ["compare_constraints"]

_CONSTRAINT_FIELDS: dict[str, tuple[str, ...]] = {
    "primary_key": ("columns", "deferrable", "initially_deferred", "comment"),
    "unique": ("columns", "deferrable", "initially_deferred", "comment"),
    "foreign_key": (
        "columns",
        "referenced_table",
        "referenced_columns",
        "on_update",
        "on_delete",
        "match",
        "deferrable",
        "initially_deferred",
        "validated",
        "comment",
    ),
    "check": ("validated", "comment"),
    "exclude": ("deferrable", "initially_deferred", "comment"),
}


def compare_constraints(
    out: Collector,
    table: str,
    left: tuple[Constraint, ...],
    right: tuple[Constraint, ...],
) -> None:
    pairs, by_definition, lo, ro = match(
        left, right, lambda c: c.name, lambda c: (c.kind, c.definition)
    )
    sub = {"parent": table, "parent_kind": "table"}
    for c in lo:
        out.presence("constraint", qualify(table, c.name), c, None, **sub)
    for c in ro:
        out.presence("constraint", qualify(table, c.name), None, c, **sub)
    for ca, cb in by_definition:
        renamed(out, "constraint", qualify(table, ca.name), ca.name, cb.name, **sub)
        _compare_constraint(out, table, ca, cb)
    for ca, cb in pairs:
        _compare_constraint(out, table, ca, cb)


def _compare_constraint(out: Collector, table: str, a: Constraint, b: Constraint) -> None:
    if dataclasses.replace(a, name=b.name, index=b.index) == b:
        return
    name = qualify(table, a.name)
    if a.kind != b.kind:
        out.changed(
            "constraint",
            name,
            "definition",
            a.definition,
            b.definition,
            parent=table,
            parent_kind="table",
        )
        return
    compare_fields(
        out,
        "constraint",
        name,
        dataclasses.replace(a, name=b.name, index=b.index),
        b,
        _CONSTRAINT_FIELDS[a.kind],
        parent=table,
        parent_kind="table",
        fallback="definition",
    )
