"""Findings: one difference a check found, as structured data (for the JSON report, the
Markdown summary and CI annotations).

A :class:`Finding` is plain, frozen data that turns into a JSON object with :meth:`to_dict`
(that dict is what travels on a test report from an xdist worker to the controller).

This module does not import pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_schemaguard.snapshot.compare import Difference, format_value

__all__ = ["Finding", "finding_of"]


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "object": self.object,
            "attribute": self.attribute,
            "category": self.category,
            "left": {"label": self.left_label, "value": self.left},
            "right": {"label": self.right_label, "value": self.right},
            "message": self.message,
            "file": self.file,
            "line": self.line,
        }


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
