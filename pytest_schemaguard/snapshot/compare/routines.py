"""Functions (procedures, aggregates, window functions), paired by signature, and the triggers
of tables and views that call them."""

from __future__ import annotations

from pytest_schemaguard.snapshot.compare.differences import Collector
from pytest_schemaguard.snapshot.compare.matching import compare_fields, match
from pytest_schemaguard.snapshot.model import Snapshot, Trigger, qualify

__all__ = ["compare_functions", "compare_triggers"]

_FUNCTION_FIELDS = (
    "kind",
    "result",
    "language",
    "volatility",
    "security_definer",
    "strict",
    "body",
    "comment",
)


def compare_functions(out: Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = match(left.functions, right.functions, lambda f: f.signature)
    for f in lo:
        out.presence(f.kind, f.signature, f, None)
    for f in ro:
        out.presence(f.kind, f.signature, None, f)
    for a, b in pairs:
        compare_fields(out, a.kind, a.signature, a, b, _FUNCTION_FIELDS, fallback="definition")


def compare_triggers(
    out: Collector,
    parent_kind: str,
    parent: str,
    left: tuple[Trigger, ...],
    right: tuple[Trigger, ...],
) -> None:
    pairs, _, lo, ro = match(left, right, lambda t: t.name)
    sub = {"parent": parent, "parent_kind": parent_kind}
    for t in lo:
        out.presence("trigger", qualify(parent, t.name), t, None, **sub)
    for t in ro:
        out.presence("trigger", qualify(parent, t.name), None, t, **sub)
    for ta, tb in pairs:
        compare_fields(
            out,
            "trigger",
            qualify(parent, ta.name),
            ta,
            tb,
            ("definition", "enabled", "comment"),
            **sub,
        )
