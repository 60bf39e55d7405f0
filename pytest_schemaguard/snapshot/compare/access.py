"""Who may see what: row-level security policies and grants (compared only when both snapshots
include grants)."""

from __future__ import annotations

from pytest_schemaguard.snapshot.compare.differences import Collector, Difference, format_value
from pytest_schemaguard.snapshot.compare.matching import compare_fields, match
from pytest_schemaguard.snapshot.model import Grant, Policy, qualify

__all__ = ["compare_grants", "compare_policies"]


def compare_policies(
    out: Collector,
    table: str,
    left: tuple[Policy, ...],
    right: tuple[Policy, ...],
) -> None:
    pairs, _, lo, ro = match(left, right, lambda p: p.name)
    sub = {"parent": table, "parent_kind": "table"}
    for p in lo:
        out.presence("policy", qualify(table, p.name), p, None, **sub)
    for p in ro:
        out.presence("policy", qualify(table, p.name), None, p, **sub)
    for pa, pb in pairs:
        compare_fields(
            out,
            "policy",
            qualify(table, pa.name),
            pa,
            pb,
            ("command", "permissive", "roles", "using", "with_check", "comment"),
            **sub,
        )


def compare_grants(
    out: Collector,
    parent_kind: str,
    parent: str,
    left: tuple[Grant, ...],
    right: tuple[Grant, ...],
) -> None:
    def key(g: Grant) -> tuple[str | None, str, str]:
        return (g.column, g.privilege, g.grantee)

    pairs, _, lo, ro = match(left, right, key)
    for g, side in [(g, "left") for g in lo] + [(g, "right") for g in ro]:
        target = qualify(parent, g.column) if g.column else parent
        attribute = f"{g.privilege} to {g.grantee}"
        before, after = (g, None) if side == "left" else (None, g)
        out.out.append(
            Difference(
                kind="grant",
                name=target,
                attribute=attribute,
                before=before,
                after=after,
                category="only_left" if side == "left" else "only_right",
                message=f"grant {attribute} on {target}: "
                f"{out.labels.only('left' if side == 'left' else 'right')}",
                parent=parent,
                parent_kind=parent_kind,
            )
        )
    for ga, gb in pairs:
        if ga.grantable != gb.grantable:
            target = qualify(parent, ga.column) if ga.column else parent
            out.changed(
                "grant",
                target,
                f"{ga.privilege} to {ga.grantee}",
                ga.grantable,
                gb.grantable,
                parent=parent,
                parent_kind=parent_kind,
                detail=f"{ga.privilege} to {ga.grantee} with grant option "
                f"{format_value(ga.grantable)} → {format_value(gb.grantable)}",
            )
