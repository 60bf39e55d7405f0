"""Schemas and extensions: the objects a database holds before any table."""

from __future__ import annotations

from pytest_schemaguard.snapshot.compare.differences import Collector
from pytest_schemaguard.snapshot.compare.matching import compare_fields, match
from pytest_schemaguard.snapshot.model import Snapshot

__all__ = ["compare_extensions", "compare_schemas"]


def compare_schemas(out: Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = match(left.schemas, right.schemas, lambda s: s.name)
    for s in lo:
        out.presence("schema", s.name, s, None)
    for s in ro:
        out.presence("schema", s.name, None, s)
    for a, b in pairs:
        compare_fields(out, "schema", a.name, a, b, ("comment",))


def compare_extensions(out: Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = match(left.extensions, right.extensions, lambda e: e.name)
    for e in lo:
        out.presence("extension", e.name, e, None)
    for e in ro:
        out.presence("extension", e.name, None, e)
    for a, b in pairs:
        compare_fields(out, "extension", a.name, a, b, ("schema", "version"))
