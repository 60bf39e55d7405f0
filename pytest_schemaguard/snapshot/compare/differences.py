"""What a comparison returns: :class:`Difference` objects and the one-line messages they carry.

:class:`Collector` is what every comparator writes to: it words the message of a difference
(``column public.tasks.owner_id: type integer → uuid``) from the object kind, the two sides'
labels and the values, so that every object family speaks the same way.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

from pytest_schemaguard.snapshot.model import Column, CompositeAttribute

__all__ = ["KIND_WORDS", "Category", "Collector", "Difference", "Labels", "format_value"]

Category = Literal["only_left", "only_right", "changed", "name", "column_order"]
"""``only_left``/``only_right``: the object exists on one side only; ``changed``: an attribute
differs; ``name``: same definition under another (usually server-generated) name;
``column_order``: the same columns in another order."""

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
class Labels:
    """How messages name the two sides (``left``/``right``, ``models``/``migrations``...)."""

    left: str
    right: str

    def only(self, side: Literal["left", "right"]) -> str:
        label = self.left if side == "left" else self.right
        if label in ("left", "right"):
            return f"present only on the {label}"
        return f"present only in {label}"


class Collector:
    """The differences found so far, each worded as it is added."""

    def __init__(self, labels: Labels) -> None:
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
