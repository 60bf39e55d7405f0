"""Tables and their columns; a table's constraints, indexes, triggers, policies and grants are
compared by their own modules, in that order."""

from __future__ import annotations

from pytest_schemaguard.snapshot.compare.access import compare_grants, compare_policies
from pytest_schemaguard.snapshot.compare.constraints import compare_constraints
from pytest_schemaguard.snapshot.compare.differences import Collector, format_value
from pytest_schemaguard.snapshot.compare.indexes import compare_indexes
from pytest_schemaguard.snapshot.compare.matching import compare_fields, match, presence_all
from pytest_schemaguard.snapshot.compare.routines import compare_triggers
from pytest_schemaguard.snapshot.model import Column, Snapshot, Table, qualify

__all__ = ["compare_columns", "compare_tables"]

_TABLE_FIELDS = (
    "partitioned",
    "persistence",
    "partition_key",
    "partition_of",
    "partition_bound",
    "inherits",
    "rls_enabled",
    "rls_forced",
    "options",
    "comment",
)
_COLUMN_FIELDS = (
    "type",
    "nullable",
    "default",
    "collation",
    "identity",
    "identity_options",
    "generated",
    "comment",
)


def compare_tables(out: Collector, left: Snapshot, right: Snapshot) -> None:
    grants = left.grants_included and right.grants_included
    pairs, _, lo, ro = match(left.tables, right.tables, lambda t: t.qualified_name)
    presence_all(out, "table", lo, ro)
    for a, b in pairs:
        if a != b:
            _compare_table(out, a, b, grants)


def _compare_table(out: Collector, a: Table, b: Table, grants: bool) -> None:
    table = a.qualified_name
    compare_fields(out, "table", table, a, b, _TABLE_FIELDS)
    compare_columns(out, "table", table, a.columns, b.columns)
    compare_constraints(out, table, a.constraints, b.constraints)
    compare_indexes(out, "table", table, a.indexes, b.indexes)
    compare_triggers(out, "table", table, a.triggers, b.triggers)
    compare_policies(out, table, a.policies, b.policies)
    if grants:
        compare_grants(out, "table", table, a.grants, b.grants)


def compare_columns(
    out: Collector,
    parent_kind: str,
    parent: str,
    left: tuple[Column, ...],
    right: tuple[Column, ...],
) -> None:
    """The columns of a table or view, and their order."""
    pairs, _, lo, ro = match(left, right, lambda c: c.name)
    sub = {"parent": parent, "parent_kind": parent_kind}
    for c in lo:
        out.presence("column", qualify(parent, c.name), c, None, **sub)
    for c in ro:
        out.presence("column", qualify(parent, c.name), None, c, **sub)
    for ca, cb in pairs:
        compare_fields(out, "column", qualify(parent, ca.name), ca, cb, _COLUMN_FIELDS, **sub)
    # column order: the relative order of the columns both sides have
    common = {c.name for c in left} & {c.name for c in right}
    order_left = tuple(c.name for c in left if c.name in common)
    order_right = tuple(c.name for c in right if c.name in common)
    if order_left != order_right:
        out.changed(
            parent_kind,
            parent,
            "column_order",
            tuple(c.name for c in left),
            tuple(c.name for c in right),
            category="column_order",
            detail=(
                f"column order {format_value(tuple(c.name for c in left))} → "
                f"{format_value(tuple(c.name for c in right))}"
            ),
        )
