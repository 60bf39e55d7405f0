"""Ignore patterns: which differences a check leaves out (``schemaguard_ignore``...)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from pytest_schemaguard.snapshot.compare.differences import KIND_WORDS, Difference

__all__ = ["CATEGORY_WORDS", "IgnoreRules", "filter_differences"]

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
