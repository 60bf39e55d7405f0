"""Views and materialized views: definition and options, then the columns (only for what the
definition cannot say), indexes, triggers and grants."""

from __future__ import annotations

from pytest_schemaguard.snapshot.compare.access import compare_grants
from pytest_schemaguard.snapshot.compare.differences import Collector
from pytest_schemaguard.snapshot.compare.indexes import compare_indexes
from pytest_schemaguard.snapshot.compare.matching import compare_fields, match
from pytest_schemaguard.snapshot.compare.routines import compare_triggers
from pytest_schemaguard.snapshot.compare.tables import compare_columns
from pytest_schemaguard.snapshot.model import Snapshot, View

__all__ = ["compare_views"]


def compare_views(out: Collector, left: Snapshot, right: Snapshot) -> None:
    grants = left.grants_included and right.grants_included
    pairs, _, lo, ro = match(left.views, right.views, lambda v: v.qualified_name)
    for v in lo:
        out.presence(v.kind, v.qualified_name, v, None)
    for v in ro:
        out.presence(v.kind, v.qualified_name, None, v)
    for a, b in pairs:
        if a != b:
            _compare_view(out, a, b, grants)


def _compare_view(out: Collector, a: View, b: View, grants: bool) -> None:
    name = a.qualified_name
    kind = a.kind
    compare_fields(out, kind, name, a, b, ("materialized", "definition", "options", "comment"))
    if a.definition == b.definition and a.materialized == b.materialized:
        # the columns follow from the definition; compare them only for what it cannot say
        compare_columns(out, kind, name, a.columns, b.columns)
    compare_indexes(out, kind, name, a.indexes, b.indexes)
    compare_triggers(out, kind, name, a.triggers, b.triggers)
    if grants:
        compare_grants(out, kind, name, a.grants, b.grants)
