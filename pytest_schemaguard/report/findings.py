"""Findings: one difference a check found, as structured data (for the JSON report, the
Markdown summary and CI annotations).

A :class:`Finding` is plain, frozen data that turns into a JSON object with :meth:`to_dict`
(that dict is what travels on a test report from an xdist worker to the controller).

The checks that compare two schemas fill the fields every finding has (``kind``, ``object``,
``attribute``, ``category``, both sides, ``message``, ``file``, ``line``).  The checks that
measure or read something else (``safety``, ``data``, ``legacy_ddl``, ``fk_types``) fill the
same fields and add what only they know (the rule, the revision, the statement, the table, the
lock, the rows...); those extra keys are written only when set, so the findings of the other
checks keep their shape.

This module does not import pytest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_schemaguard.snapshot.compare import Difference, format_value

__all__ = ["Finding", "finding_of", "plain"]


@dataclass(frozen=True)
class Finding:
    """One difference: which object, which attribute, what each side has, and the message."""

    kind: str
    """The object kind (``table``, ``column``, ``index``, ``enum``...)."""
    object: str
    """The qualified name: ``public.tasks.owner_id``."""
    attribute: str | None
    """The differing attribute (``type``, ``default``...); None when the object exists on one
    side only."""
    category: str
    """``only_left``, ``only_right``, ``changed``, ``name`` or ``column_order``."""
    left_label: str
    left: str | None
    """The left side's value as messages show it (None: the object is not there)."""
    right_label: str
    right: str | None
    message: str
    """The line a reader sees for it."""
    file: str | None = None
    line: int | None = None
    """Where the finding points, when that is more precise than its item (1-based)."""
    # --- written only when set (the checks that are not schema comparisons) ---------------
    rule: str | None = None
    """The check's own name for what it found: a safety rule (``table-rewrite``), a legacy
    DDL code (``key-type``), ``fk-type``, ``fails-with-rows`` or ``deletes-rows``."""
    revision: str | None = None
    """The revision the finding is about (full id): the one measured or seeded, or the one
    that created a foreign key."""
    statement: str | None = None
    """The SQL statement, on one line."""
    table: str | None = None
    """The table it is about, qualified."""
    lock: str | None = None
    """``safety``: the strongest lock held on :attr:`table` after the statement
    (``ACCESS EXCLUSIVE``)."""
    rewrite: bool | None = None
    """``safety``: whether the statement rewrote :attr:`table` or rebuilt one of its
    indexes."""
    rows: Mapping[str, int] | None = None
    """``data``: the rows of each seeded table (qualified name) when the step ran."""
    references: str | None = None
    """``fk_types``: the referenced column (qualified); :attr:`object` is the referencing
    one."""

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            key: value
            for key, value in (
                ("rule", self.rule),
                ("revision", self.revision),
                ("statement", self.statement),
                ("table", self.table),
                ("lock", self.lock),
                ("rewrite", self.rewrite),
                ("rows", dict(self.rows) if self.rows is not None else None),
                ("references", self.references),
            )
            if value is not None
        }
        data: dict[str, Any] = plain(
            {
                "kind": self.kind,
                "object": self.object,
                "attribute": self.attribute,
                "category": self.category,
                "left": {"label": self.left_label, "value": self.left},
                "right": {"label": self.right_label, "value": self.right},
                "message": self.message,
                "file": self.file,
                "line": self.line,
                **extra,
            }
        )
        return data


def plain(value: Any) -> Any:
    """``value`` made of the builtin types alone (a ``str`` subclass such as SQLAlchemy's
    ``quoted_name`` becomes a ``str``): findings travel in JSON and, under xdist, through
    execnet, which takes only the builtin types themselves."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


def _value(value: Any) -> str | None:
    return None if value is None else format_value(value)


def finding_of(
    difference: Difference, left_label: str, right_label: str, *, message: str | None = None
) -> Finding:
    """The finding of a snapshot difference (``message``: the sentence shown for it, when the
    check words it otherwise than the difference's own message)."""
    left, right = difference.before, difference.after
    if difference.category == "only_left":
        right = None
    elif difference.category == "only_right":
        left = None
    return Finding(
        kind=difference.kind,
        object=difference.name,
        attribute=difference.attribute,
        category=difference.category,
        left_label=left_label,
        left=_value(left),
        right_label=right_label,
        right=_value(right),
        message=message or difference.message,
    )
