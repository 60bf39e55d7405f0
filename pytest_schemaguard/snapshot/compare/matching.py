"""What every comparator does: pair objects of two sides and report the fields that differ.

Objects are paired by name, then (for kinds whose names PostgreSQL often invents) the leftovers
by definition, which makes a *name-only* difference.  deepdiff finds which attributes of two
paired objects differ; the messages are ours (:class:`Collector`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pytest_schemaguard.snapshot.compare.differences import Collector

__all__ = ["compare_fields", "match", "presence_all", "renamed"]

_O = TypeVar("_O")


def match(
    left: Iterable[_O],
    right: Iterable[_O],
    key: Callable[[_O], Any],
    definition: Callable[[_O], Any] | None = None,
) -> tuple[list[tuple[_O, _O]], list[tuple[_O, _O]], list[_O], list[_O]]:
    """Pair objects by ``key``; then pair the leftovers by ``definition``.

    Returns (same-key pairs, same-definition pairs, left only, right only)."""
    right_by_key = {key(o): o for o in right}
    pairs: list[tuple[_O, _O]] = []
    left_only: list[_O] = []
    for o in left:
        other = right_by_key.pop(key(o), None)
        if other is None:
            left_only.append(o)
        else:
            pairs.append((o, other))
    right_only = list(right_by_key.values())
    by_definition: list[tuple[_O, _O]] = []
    if definition is not None and left_only and right_only:
        pool: dict[Any, list[_O]] = {}
        for o in right_only:
            pool.setdefault(definition(o), []).append(o)
        still_left: list[_O] = []
        for o in left_only:
            candidates = pool.get(definition(o))
            if candidates:
                by_definition.append((o, candidates.pop(0)))
            else:
                still_left.append(o)
        matched = {id(b) for _a, b in by_definition}
        left_only = still_left
        right_only = [o for o in right_only if id(o) not in matched]
    return pairs, by_definition, left_only, right_only


def compare_fields(
    out: Collector,
    kind: str,
    name: str,
    left: Any,
    right: Any,
    fields: Sequence[str],
    *,
    parent: str | None = None,
    parent_kind: str | None = None,
    fallback: str | None = None,
) -> None:
    """Report each differing field; ``fallback`` (e.g. ``definition``) only when no more
    specific field explains the difference."""
    if left == right:
        return
    attributes = _changed_attributes(left, right, fields)
    if not attributes and fallback and getattr(left, fallback) != getattr(right, fallback):
        attributes = [fallback]
    for attribute in attributes:
        out.changed(
            kind,
            name,
            attribute,
            _get_path(left, attribute),
            _get_path(right, attribute),
            parent=parent,
            parent_kind=parent_kind,
        )


def presence_all(out: Collector, kind: str, lo: Iterable[Any], ro: Iterable[Any]) -> None:
    """Report objects present on one side only, named by their ``qualified_name``."""
    for o in lo:
        out.presence(kind, o.qualified_name, o, None)
    for o in ro:
        out.presence(kind, o.qualified_name, None, o)


def renamed(
    out: Collector,
    kind: str,
    name: str,
    before: str,
    after: str,
    *,
    parent: str | None = None,
    parent_kind: str | None = None,
) -> None:
    """Report a pair with the same definition under two names (a name-only difference)."""
    out.changed(
        kind,
        name,
        "name",
        before,
        after,
        parent=parent,
        parent_kind=parent_kind,
        category="name",
        detail=f"name {before} → {after} (same definition)",
    )


def _changed_attributes(left: Any, right: Any, fields: Sequence[str]) -> list[str]:
    """Attributes (``a`` or ``a.b`` for nested dataclasses) among ``fields`` that differ."""
    differing = [f for f in fields if getattr(left, f) != getattr(right, f)]
    if not differing:
        return []
    # imported here: most runs compare only equal snapshots and never need it (it costs about
    # 20 ms of start-up)
    from deepdiff import DeepDiff

    diff = DeepDiff(
        {f: _plain(getattr(left, f)) for f in differing},
        {f: _plain(getattr(right, f)) for f in differing},
    )
    found: list[str] = []
    for path in diff.affected_paths:
        parts = re.findall(r"\[('(?:[^']|\\')*'|\d+)\]", str(path))
        keys: list[str] = []
        for part in parts:
            if not part.startswith("'"):
                break  # stop at a list index: the whole list is the attribute
            keys.append(part[1:-1])
        attribute = ".".join(keys) if keys else differing[0]
        if attribute not in found:
            found.append(attribute)
    # keep the declaration order of the fields, then nested keys in their own order
    order = {f: i for i, f in enumerate(fields)}
    found.sort(key=lambda a: order.get(a.split(".")[0], len(order)))
    return found


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _get_path(obj: Any, attribute: str) -> Any:
    value = obj
    for part in attribute.split("."):
        value = getattr(value, part, None) if value is not None else None
    return value
