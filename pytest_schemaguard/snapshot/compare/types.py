"""Types and sequences: enums (their labels), domains (and their constraints), composite types,
and sequences, which are paired by what they are when a column owns them (``serial``)."""

from __future__ import annotations

import dataclasses

from pytest_schemaguard.snapshot.compare.differences import Collector, format_value
from pytest_schemaguard.snapshot.compare.matching import (
    compare_fields,
    match,
    presence_all,
    renamed,
)
from pytest_schemaguard.snapshot.model import Domain, Snapshot
from pytest_schemaguard.snapshot.model import Sequence as Sequence_

__all__ = ["compare_composite_types", "compare_domains", "compare_enums", "compare_sequences"]


def compare_enums(out: Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = match(left.enums, right.enums, lambda t: t.qualified_name)
    presence_all(out, "enum", lo, ro)
    for a, b in pairs:
        if a.labels != b.labels:
            out.changed(
                "enum",
                a.qualified_name,
                "labels",
                a.labels,
                b.labels,
                detail=_labels_detail(a.labels, b.labels),
            )
        compare_fields(out, "enum", a.qualified_name, a, b, ("comment",))


def _labels_detail(before: tuple[str, ...], after: tuple[str, ...]) -> str:
    added = [x for x in after if x not in before]
    removed = [x for x in before if x not in after]
    notes: list[str] = []
    if added and removed and len(added) == len(removed) == 1 and len(before) == len(after):
        notes.append(f"{removed[0]} renamed to {added[0]}")
    else:
        if added:
            notes.append("added " + ", ".join(added))
        if removed:
            notes.append("removed " + ", ".join(removed))
        if not added and not removed:
            notes.append("reordered")
    return f"labels {format_value(before)} → {format_value(after)} ({'; '.join(notes)})"


def compare_domains(out: Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = match(left.domains, right.domains, lambda t: t.qualified_name)
    presence_all(out, "domain", lo, ro)
    for a, b in pairs:
        _compare_domain(out, a, b)


def _compare_domain(out: Collector, a: Domain, b: Domain) -> None:
    if a == b:
        return
    name = a.qualified_name
    compare_fields(
        out, "domain", name, a, b, ("base_type", "nullable", "default", "collation", "comment")
    )
    pairs, by_definition, lo, ro = match(
        a.constraints, b.constraints, lambda c: c.name, lambda c: (c.definition, c.validated)
    )
    for c in lo:
        out.changed("domain", name, f"constraint {c.name}", c.definition, None)
    for c in ro:
        out.changed("domain", name, f"constraint {c.name}", None, c.definition)
    for ca, cb in by_definition:
        renamed(out, "domain", name, ca.name, cb.name)
    for ca, cb in pairs:
        if ca != cb:
            out.changed("domain", name, f"constraint {ca.name}", ca.definition, cb.definition)


def compare_composite_types(out: Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = match(
        left.composite_types, right.composite_types, lambda t: t.qualified_name
    )
    presence_all(out, "composite_type", lo, ro)
    for a, b in pairs:
        compare_fields(out, "composite_type", a.qualified_name, a, b, ("attributes", "comment"))


_SEQUENCE_FIELDS = (
    "data_type",
    "start",
    "increment",
    "min_value",
    "max_value",
    "cache",
    "cycle",
    "owned_by",
    "comment",
)


def _sequence_definition(s: Sequence_) -> object:
    # a sequence owned by a column (serial) is matched by what it is, not by its name
    if s.owned_by is None:
        return ("unowned", s.qualified_name)
    return dataclasses.replace(s, name="", comment=None)


def compare_sequences(out: Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, by_definition, lo, ro = match(
        left.sequences, right.sequences, lambda s: s.qualified_name, _sequence_definition
    )
    presence_all(out, "sequence", lo, ro)
    for a, b in by_definition:
        renamed(out, "sequence", a.qualified_name, a.name, b.name)
        compare_fields(out, "sequence", a.qualified_name, a, b, ("comment",))
    for a, b in pairs:
        compare_fields(out, "sequence", a.qualified_name, a, b, _SEQUENCE_FIELDS)
