"""Compare two snapshots object by object and explain every difference.

One small comparator per object kind turns a pair of snapshots into typed
:class:`Difference` objects, each with a one-line human message.  Objects are matched by name,
then (for constraints, indexes and sequences, whose names PostgreSQL often invents) by
definition: a pair that differs only in its name is a *name-only* difference, which a check can
ignore.  Column order is a difference category of its own.

deepdiff finds which attributes of two matched objects differ; the messages are ours.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from deepdiff import DeepDiff

from pytest_schemaguard.snapshot.model import (
    Column,
    CompositeAttribute,
    Constraint,
    Domain,
    Grant,
    Index,
    Policy,
    Snapshot,
    Table,
    Trigger,
    View,
    qualify,
)
from pytest_schemaguard.snapshot.model import (
    Sequence as Sequence_,
)

__all__ = [
    "CATEGORY_WORDS",
    "Category",
    "Difference",
    "IgnoreRules",
    "compare",
    "filter_differences",
]

Category = Literal["only_left", "only_right", "changed", "name", "column_order"]
"""``only_left``/``only_right``: the object exists on one side only; ``changed``: an attribute
differs; ``name``: same definition under another (usually server-generated) name;
``column_order``: the same columns in another order."""

#: Words (not ``kind:pattern``) accepted in ignore patterns, and what each one drops.
CATEGORY_WORDS: dict[str, str] = {
    "column_order": "differences in column order only",
    "constraint_name": "constraints that differ only in name",
    "index_name": "indexes that differ only in name",
    "sequence_name": "sequences that differ only in name",
    "names": "every name-only difference",
    "comments": "differences in comments",
    "grants": "differences in grants",
}

#: Object kinds, and the word used for each in messages.
KIND_WORDS: dict[str, str] = {
    "schema": "schema",
    "extension": "extension",
    "enum": "type",
    "domain": "domain",
    "composite_type": "type",
    "sequence": "sequence",
    "table": "table",
    "column": "column",
    "constraint": "constraint",
    "index": "index",
    "trigger": "trigger",
    "policy": "policy",
    "grant": "grant",
    "view": "view",
    "materialized_view": "materialized view",
    "function": "function",
    "procedure": "procedure",
    "aggregate": "aggregate",
    "window": "function",
}

# Kinds an ignore pattern may name, and the difference kinds each one covers.
_PATTERN_KINDS: dict[str, frozenset[str]] = {
    **{k: frozenset({k}) for k in KIND_WORDS},
    "type": frozenset({"enum", "composite_type", "domain"}),
    "view": frozenset({"view", "materialized_view"}),
    "function": frozenset({"function", "procedure", "aggregate", "window"}),
    "*": frozenset(KIND_WORDS),
}
# Kinds whose objects contain others: ignoring the container ignores its contents.
_CONTAINER_KINDS = frozenset({"table", "view", "materialized_view"})


@dataclass(frozen=True)
class Difference:
    """One difference between the left and the right snapshot."""

    kind: str
    """Object kind: ``table``, ``column``, ``constraint``, ``index``, ``enum``... (see
    :data:`KIND_WORDS`)."""
    name: str
    """Qualified name: ``public.tasks``, ``public.tasks.owner_id`` (a column, constraint, index,
    trigger or policy is named after its table), ``public.f(integer)`` for a function."""
    attribute: str | None
    """The differing attribute (``type``, ``default``, ``identity_options.increment``,
    ``labels``, ``name``, ``column_order``...); ``None`` when the object exists on one side
    only."""
    before: Any
    """The left value (the left object for ``only_left``; ``None`` for ``only_right``)."""
    after: Any
    category: Category
    message: str
    """One line: ``column public.tasks.owner_id: type integer → uuid``."""
    parent: str | None = None
    """Qualified name of the table or view holding the object, if any."""
    parent_kind: str | None = None

    @property
    def name_only(self) -> bool:
        """True when the two objects are the same except for their name."""
        return self.category == "name"

    @property
    def key(self) -> str:
        """``kind:qualified_name``, the string ignore patterns match."""
        return f"{self.kind}:{self.name}"

    @property
    def group(self) -> tuple[str, str]:
        """(kind, name) of the top-level object the difference belongs to (for rendering)."""
        if self.parent is not None and self.parent_kind is not None:
            return (self.parent_kind, self.parent)
        return (self.kind, self.name)

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------------------------
# Ignore patterns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRules:
    """Compiled ignore patterns.

    A pattern is either a category word (see :data:`CATEGORY_WORDS`) or ``kind:glob``, where
    ``glob`` is matched (``fnmatch``, case-sensitive) against the qualified name and against
    the name without its schema: ``table:audit_*``, ``extension:*``, ``column:*.legacy_id``,
    ``type:public.*``.  Ignoring a table or view also ignores everything on it, and a table
    the sequences its columns own (``serial``).
    """

    patterns: tuple[str, ...] = ()
    words: frozenset[str] = frozenset()
    globs: tuple[tuple[frozenset[str], str], ...] = ()

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> IgnoreRules:
        """Compile ``patterns``; ``ValueError`` naming the bad pattern and the valid forms."""
        words: set[str] = set()
        globs: list[tuple[frozenset[str], str]] = []
        kept: list[str] = []
        for raw in patterns:
            pattern = raw.strip()
            if not pattern:
                continue
            kept.append(pattern)
            kind, colon, glob = pattern.partition(":")
            if not colon:
                if pattern not in CATEGORY_WORDS:
                    raise ValueError(_bad_pattern(raw))
                words.add(pattern)
                continue
            kinds = _PATTERN_KINDS.get(kind.strip())
            if kinds is None or not glob.strip():
                raise ValueError(_bad_pattern(raw))
            globs.append((kinds, glob.strip()))
        return cls(tuple(kept), frozenset(words), tuple(globs))

    def __bool__(self) -> bool:
        return bool(self.words or self.globs)

    def ignores(self, diff: Difference) -> bool:
        words = self.words
        if words:
            if diff.category == "column_order" and "column_order" in words:
                return True
            if diff.category == "name" and ("names" in words or f"{diff.kind}_name" in words):
                return True
            if "comments" in words and diff.attribute == "comment":
                return True
            if "grants" in words and diff.kind == "grant":
                return True
        for kinds, glob in self.globs:
            if diff.kind in kinds and _name_matches(diff.name, glob):
                return True
            if (
                diff.parent is not None
                and diff.parent_kind in kinds
                and diff.parent_kind in _CONTAINER_KINDS
                and _name_matches(diff.parent, glob)
            ):
                return True
            owner = _owning_table(diff)
            if owner is not None and "table" in kinds and _name_matches(owner, glob):
                return True
        return False


def _owning_table(diff: Difference) -> str | None:
    """The table whose column owns the sequence of ``diff`` (a ``serial``'s sequence goes
    with its table), if any."""
    if diff.kind != "sequence":
        return None
    for obj in (diff.before, diff.after):
        owned_by = getattr(obj, "owned_by", None)
        if isinstance(owned_by, str) and owned_by.count(".") >= 2:
            return owned_by.rsplit(".", 1)[0]
    return None


def _bad_pattern(pattern: str) -> str:
    kinds = ", ".join(sorted(k for k in _PATTERN_KINDS if k != "*"))
    words = ", ".join(CATEGORY_WORDS)
    return (
        f"invalid schema ignore pattern {pattern!r}: use one of the words {words}, "
        f"or 'kind:name-pattern' with kind one of {kinds} or '*' "
        "(for example 'table:audit_*' or 'extension:*')"
    )


def _name_matches(name: str, glob: str) -> bool:
    if fnmatch.fnmatchcase(name, glob):
        return True
    _schema, dot, unqualified = name.partition(".")
    return bool(dot) and fnmatch.fnmatchcase(unqualified, glob)


def filter_differences(
    differences: Iterable[Difference], ignore: IgnoreRules | Iterable[str]
) -> list[Difference]:
    """The differences that no ignore pattern matches."""
    rules = ignore if isinstance(ignore, IgnoreRules) else IgnoreRules.from_patterns(ignore)
    if not rules:
        return list(differences)
    return [d for d in differences if not rules.ignores(d)]


# --------------------------------------------------------------------------------------------
# Message formatting
# --------------------------------------------------------------------------------------------

_MAX_VALUE = 160
_SPACES = re.compile(r"\s+")


def format_value(value: Any) -> str:
    """A value on one line, as messages show it."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ", ".join(format_value(v) for v in value) if value else "(empty)"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        definition = getattr(value, "definition", None)
        if isinstance(definition, str):
            return format_value(definition)
        if isinstance(value, Column):
            return _column_summary(value)
        if isinstance(value, CompositeAttribute):
            collate = f' COLLATE "{value.collation}"' if value.collation else ""
            return format_value(f"{value.name} {value.type}{collate}")
        return format_value(getattr(value, "name", repr(value)))
    text = _SPACES.sub(" ", str(value)).strip()
    if len(text) > _MAX_VALUE:
        text = text[: _MAX_VALUE - 1] + "…"
    return text


def _column_summary(column: Column) -> str:
    parts = [column.type]
    if not column.nullable:
        parts.append("NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if column.identity:
        parts.append(f"GENERATED {column.identity.upper()} AS IDENTITY")
    if column.generated:
        parts.append(f"GENERATED ALWAYS AS ({column.generated})")
    return format_value(" ".join(parts))


@dataclass(frozen=True)
class _Labels:
    left: str
    right: str

    def only(self, side: Literal["left", "right"]) -> str:
        label = self.left if side == "left" else self.right
        if label in ("left", "right"):
            return f"present only on the {label}"
        return f"present only in {label}"


# --------------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------------

_O = TypeVar("_O")


class _Collector:
    def __init__(self, labels: _Labels) -> None:
        self.labels = labels
        self.out: list[Difference] = []

    def presence(
        self,
        kind: str,
        name: str,
        left: Any,
        right: Any,
        *,
        parent: str | None = None,
        parent_kind: str | None = None,
    ) -> None:
        side: Literal["left", "right"] = "left" if right is None else "right"
        self.out.append(
            Difference(
                kind=kind,
                name=name,
                attribute=None,
                before=left,
                after=right,
                category="only_left" if side == "left" else "only_right",
                message=f"{KIND_WORDS[kind]} {name}: {self.labels.only(side)}",
                parent=parent,
                parent_kind=parent_kind,
            )
        )

    def changed(
        self,
        kind: str,
        name: str,
        attribute: str,
        before: Any,
        after: Any,
        *,
        parent: str | None = None,
        parent_kind: str | None = None,
        category: Category = "changed",
        detail: str | None = None,
    ) -> None:
        text = detail or f"{attribute} {format_value(before)} → {format_value(after)}"
        self.out.append(
            Difference(
                kind=kind,
                name=name,
                attribute=attribute,
                before=before,
                after=after,
                category=category,
                message=f"{KIND_WORDS[kind]} {name}: {text}",
                parent=parent,
                parent_kind=parent_kind,
            )
        )


def _changed_attributes(left: Any, right: Any, fields: Sequence[str]) -> list[str]:
    """Attributes (``a`` or ``a.b`` for nested dataclasses) among ``fields`` that differ."""
    differing = [f for f in fields if getattr(left, f) != getattr(right, f)]
    if not differing:
        return []
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


def _compare_fields(
    out: _Collector,
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


def _match(
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
    renamed: list[tuple[_O, _O]] = []
    if definition is not None and left_only and right_only:
        pool: dict[Any, list[_O]] = {}
        for o in right_only:
            pool.setdefault(definition(o), []).append(o)
        still_left: list[_O] = []
        for o in left_only:
            candidates = pool.get(definition(o))
            if candidates:
                renamed.append((o, candidates.pop(0)))
            else:
                still_left.append(o)
        matched = {id(b) for _a, b in renamed}
        left_only = still_left
        right_only = [o for o in right_only if id(o) not in matched]
    return pairs, renamed, left_only, right_only


def compare(
    left: Snapshot,
    right: Snapshot,
    *,
    left_label: str = "left",
    right_label: str = "right",
    ignore: IgnoreRules | Iterable[str] = (),
) -> list[Difference]:
    """Every difference between ``left`` and ``right``, in a stable order.

    ``left_label``/``right_label`` name the two sides in messages (``"parent schema"`` /
    ``"after downgrade"``, ``"migrations"`` / ``"models"``).  ``ignore`` drops differences (see
    :class:`IgnoreRules`).  Grants are compared only when both snapshots include them.
    """
    out = _Collector(_Labels(left_label, right_label))
    if left != right:
        _compare_snapshots(out, left, right)
    return filter_differences(out.out, ignore)


def _compare_snapshots(out: _Collector, left: Snapshot, right: Snapshot) -> None:
    grants = left.grants_included and right.grants_included
    _compare_schemas(out, left, right)
    _compare_extensions(out, left, right)
    _compare_enums(out, left, right)
    _compare_domains(out, left, right)
    _compare_composite_types(out, left, right)
    _compare_sequences(out, left, right)
    _compare_tables(out, left, right, grants)
    _compare_views(out, left, right, grants)
    _compare_functions(out, left, right)


def _compare_schemas(out: _Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = _match(left.schemas, right.schemas, lambda s: s.name)
    for s in lo:
        out.presence("schema", s.name, s, None)
    for s in ro:
        out.presence("schema", s.name, None, s)
    for a, b in pairs:
        _compare_fields(out, "schema", a.name, a, b, ("comment",))


def _compare_extensions(out: _Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = _match(left.extensions, right.extensions, lambda e: e.name)
    for e in lo:
        out.presence("extension", e.name, e, None)
    for e in ro:
        out.presence("extension", e.name, None, e)
    for a, b in pairs:
        _compare_fields(out, "extension", a.name, a, b, ("schema", "version"))


def _compare_enums(out: _Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = _match(left.enums, right.enums, lambda t: t.qualified_name)
    _presence_all(out, "enum", lo, ro)
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
        _compare_fields(out, "enum", a.qualified_name, a, b, ("comment",))


def _compare_domains(out: _Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = _match(left.domains, right.domains, lambda t: t.qualified_name)
    _presence_all(out, "domain", lo, ro)
    for a, b in pairs:
        _compare_domain(out, a, b)


def _compare_composite_types(out: _Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = _match(
        left.composite_types, right.composite_types, lambda t: t.qualified_name
    )
    _presence_all(out, "composite_type", lo, ro)
    for a, b in pairs:
        _compare_fields(out, "composite_type", a.qualified_name, a, b, ("attributes", "comment"))


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


def _compare_sequences(out: _Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, renamed, lo, ro = _match(
        left.sequences, right.sequences, lambda s: s.qualified_name, _sequence_definition
    )
    _presence_all(out, "sequence", lo, ro)
    for a, b in renamed:
        _renamed(out, "sequence", a.qualified_name, a.name, b.name)
        _compare_fields(out, "sequence", a.qualified_name, a, b, ("comment",))
    for a, b in pairs:
        _compare_fields(out, "sequence", a.qualified_name, a, b, _SEQUENCE_FIELDS)


def _compare_tables(out: _Collector, left: Snapshot, right: Snapshot, grants: bool) -> None:
    pairs, _, lo, ro = _match(left.tables, right.tables, lambda t: t.qualified_name)
    _presence_all(out, "table", lo, ro)
    for a, b in pairs:
        if a != b:
            _compare_table(out, a, b, grants)


def _compare_views(out: _Collector, left: Snapshot, right: Snapshot, grants: bool) -> None:
    pairs, _, lo, ro = _match(left.views, right.views, lambda v: v.qualified_name)
    for v in lo:
        out.presence(v.kind, v.qualified_name, v, None)
    for v in ro:
        out.presence(v.kind, v.qualified_name, None, v)
    for a, b in pairs:
        if a != b:
            _compare_view(out, a, b, grants)


def _compare_functions(out: _Collector, left: Snapshot, right: Snapshot) -> None:
    pairs, _, lo, ro = _match(left.functions, right.functions, lambda f: f.signature)
    for f in lo:
        out.presence(f.kind, f.signature, f, None)
    for f in ro:
        out.presence(f.kind, f.signature, None, f)
    for a, b in pairs:
        _compare_fields(out, a.kind, a.signature, a, b, _FUNCTION_FIELDS, fallback="definition")


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


def _presence_all(out: _Collector, kind: str, lo: Iterable[Any], ro: Iterable[Any]) -> None:
    for o in lo:
        out.presence(kind, o.qualified_name, o, None)
    for o in ro:
        out.presence(kind, o.qualified_name, None, o)


def _renamed(
    out: _Collector,
    kind: str,
    name: str,
    before: str,
    after: str,
    *,
    parent: str | None = None,
    parent_kind: str | None = None,
) -> None:
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


def _compare_domain(out: _Collector, a: Domain, b: Domain) -> None:
    if a == b:
        return
    name = a.qualified_name
    _compare_fields(
        out, "domain", name, a, b, ("base_type", "nullable", "default", "collation", "comment")
    )
    pairs, renamed, lo, ro = _match(
        a.constraints, b.constraints, lambda c: c.name, lambda c: (c.definition, c.validated)
    )
    for c in lo:
        out.changed("domain", name, f"constraint {c.name}", c.definition, None)
    for c in ro:
        out.changed("domain", name, f"constraint {c.name}", None, c.definition)
    for ca, cb in renamed:
        _renamed(out, "domain", name, ca.name, cb.name)
    for ca, cb in pairs:
        if ca != cb:
            out.changed("domain", name, f"constraint {ca.name}", ca.definition, cb.definition)


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


def _compare_table(out: _Collector, a: Table, b: Table, grants: bool) -> None:
    table = a.qualified_name
    _compare_fields(out, "table", table, a, b, _TABLE_FIELDS)
    _compare_columns(out, "table", table, a.columns, b.columns)

    # constraints: by name, then by definition
    pairs, renamed, lo, ro = _match(
        a.constraints, b.constraints, lambda c: c.name, lambda c: (c.kind, c.definition)
    )
    sub = {"parent": table, "parent_kind": "table"}
    for c in lo:
        out.presence("constraint", qualify(table, c.name), c, None, **sub)
    for c in ro:
        out.presence("constraint", qualify(table, c.name), None, c, **sub)
    for ca, cb in renamed:
        _renamed(out, "constraint", qualify(table, ca.name), ca.name, cb.name, **sub)
        _compare_constraint(out, table, ca, cb)
    for ca, cb in pairs:
        _compare_constraint(out, table, ca, cb)

    _compare_indexes(out, "table", table, a.indexes, b.indexes)
    _compare_triggers(out, "table", table, a.triggers, b.triggers)

    pairs_p, _, lo_p, ro_p = _match(a.policies, b.policies, lambda p: p.name)
    for p in lo_p:
        out.presence("policy", qualify(table, p.name), p, None, **sub)
    for p in ro_p:
        out.presence("policy", qualify(table, p.name), None, p, **sub)
    for pa, pb in pairs_p:
        _compare_policy(out, table, pa, pb)

    if grants:
        _compare_grants(out, "table", table, a.grants, b.grants)


def _compare_constraint(out: _Collector, table: str, a: Constraint, b: Constraint) -> None:
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
    _compare_fields(
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


def _compare_columns(
    out: _Collector,
    parent_kind: str,
    parent: str,
    left: tuple[Column, ...],
    right: tuple[Column, ...],
) -> None:
    pairs, _, lo, ro = _match(left, right, lambda c: c.name)
    sub = {"parent": parent, "parent_kind": parent_kind}
    for c in lo:
        out.presence("column", qualify(parent, c.name), c, None, **sub)
    for c in ro:
        out.presence("column", qualify(parent, c.name), None, c, **sub)
    for ca, cb in pairs:
        _compare_fields(out, "column", qualify(parent, ca.name), ca, cb, _COLUMN_FIELDS, **sub)
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


def _compare_indexes(
    out: _Collector,
    parent_kind: str,
    parent: str,
    left: tuple[Index, ...],
    right: tuple[Index, ...],
) -> None:
    # Indexes implementing a constraint are reported through the constraint.
    pairs, renamed, lo, ro = _match(
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
    for ia, ib in renamed:
        _renamed(out, "index", qualify(parent, ia.name), ia.name, ib.name, **sub)
        _compare_fields(out, "index", qualify(parent, ia.name), ia, ib, ("comment",), **sub)
    for ia, ib in pairs:
        if ia.signature != ib.signature or ia != ib:
            _compare_fields(
                out,
                "index",
                qualify(parent, ia.name),
                ia,
                ib,
                _INDEX_FIELDS,
                fallback="definition",
                **sub,
            )


def _compare_triggers(
    out: _Collector,
    parent_kind: str,
    parent: str,
    left: tuple[Trigger, ...],
    right: tuple[Trigger, ...],
) -> None:
    pairs, _, lo, ro = _match(left, right, lambda t: t.name)
    sub = {"parent": parent, "parent_kind": parent_kind}
    for t in lo:
        out.presence("trigger", qualify(parent, t.name), t, None, **sub)
    for t in ro:
        out.presence("trigger", qualify(parent, t.name), None, t, **sub)
    for ta, tb in pairs:
        _compare_fields(
            out,
            "trigger",
            qualify(parent, ta.name),
            ta,
            tb,
            ("definition", "enabled", "comment"),
            **sub,
        )


def _compare_policy(out: _Collector, table: str, a: Policy, b: Policy) -> None:
    _compare_fields(
        out,
        "policy",
        qualify(table, a.name),
        a,
        b,
        ("command", "permissive", "roles", "using", "with_check", "comment"),
        parent=table,
        parent_kind="table",
    )


def _compare_grants(
    out: _Collector,
    parent_kind: str,
    parent: str,
    left: tuple[Grant, ...],
    right: tuple[Grant, ...],
) -> None:
    def key(g: Grant) -> tuple[str | None, str, str]:
        return (g.column, g.privilege, g.grantee)

    pairs, _, lo, ro = _match(left, right, key)
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


def _compare_view(out: _Collector, a: View, b: View, grants: bool) -> None:
    name = a.qualified_name
    kind = a.kind
    _compare_fields(out, kind, name, a, b, ("materialized", "definition", "options", "comment"))
    if a.definition == b.definition and a.materialized == b.materialized:
        # the columns follow from the definition; compare them only for what it cannot say
        _compare_columns(out, kind, name, a.columns, b.columns)
    _compare_indexes(out, kind, name, a.indexes, b.indexes)
    _compare_triggers(out, kind, name, a.triggers, b.triggers)
    if grants:
        _compare_grants(out, kind, name, a.grants, b.grants)
