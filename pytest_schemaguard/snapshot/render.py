"""Render differences for people: grouped per object, ``-``/``+`` lines, one summary line.

Colour is used only when the caller asks for it (``color=True``); callers pass it only when
writing to a terminal and ``NO_COLOR`` is not set (see :func:`should_use_color`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any

from pytest_schemaguard.snapshot.compare import KIND_WORDS, Difference, format_value
from pytest_schemaguard.snapshot.model import Domain, Enum, Extension, Policy, Sequence, Table

__all__ = ["render", "should_use_color", "summary_line"]

_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"


def should_use_color(stream: IO[Any] | None = None, env: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is a terminal and ``NO_COLOR`` is not set (to any value)."""
    environ = os.environ if env is None else env
    if "NO_COLOR" in environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def summary_line(
    differences: Iterable[Difference], *, left_label: str = "left", right_label: str = "right"
) -> str:
    """``3 schema differences between parent schema and after downgrade: 1 only in ...``."""
    diffs = list(differences)
    if not diffs:
        return f"no schema differences between {left_label} and {right_label}"
    counts = {
        "only_left": sum(d.category == "only_left" for d in diffs),
        "only_right": sum(d.category == "only_right" for d in diffs),
        "changed": sum(d.category == "changed" for d in diffs),
        "name": sum(d.category == "name" for d in diffs),
        "column_order": sum(d.category == "column_order" for d in diffs),
    }
    words = {
        "only_left": f"only in {left_label}",
        "only_right": f"only in {right_label}",
        "changed": "changed",
        "name": "name only",
        "column_order": "column order",
    }
    parts = [f"{n} {words[k]}" for k, n in counts.items() if n]
    noun = "difference" if len(diffs) == 1 else "differences"
    return f"{len(diffs)} schema {noun} between {left_label} and {right_label}: " + ", ".join(parts)


def render(
    differences: Iterable[Difference],
    *,
    left_label: str = "left",
    right_label: str = "right",
    color: bool = False,
    header: bool = True,
) -> str:
    """The differences as text: a ``---``/``+++`` header naming the sides, one block per
    top-level object (table, view, type...) with ``-`` (left) / ``+`` (right) / ``~`` (renamed)
    lines, and a summary line."""
    diffs = list(differences)
    paint = _Painter(color)
    lines: list[str] = []
    if header:
        lines.append(paint(f"--- {left_label}", _RED))
        lines.append(paint(f"+++ {right_label}", _GREEN))
    groups: dict[tuple[str, str], list[Difference]] = {}
    for d in diffs:
        groups.setdefault(d.group, []).append(d)
    for (kind, name), items in groups.items():
        own_presence = [
            d for d in items if d.attribute is None and d.kind == kind and d.name == name
        ]
        if own_presence:
            d = own_presence[0]
            sign, colour = ("-", _RED) if d.category == "only_left" else ("+", _GREEN)
            obj = d.before if d.category == "only_left" else d.after
            lines.append(paint(f"{sign} {KIND_WORDS.get(kind, kind)} {name}", colour + _BOLD))
            detail = _describe(obj)
            if detail:
                lines.append(paint(f"{sign}     {detail}", colour))
            continue
        lines.append(paint(f"{KIND_WORDS.get(kind, kind)} {name}", _BOLD))
        for d in items:
            lines.extend(_render_item(d, paint))
    lines.append(paint(summary_line(diffs, left_label=left_label, right_label=right_label), _BOLD))
    return "\n".join(lines)


class _Painter:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.enabled else text


def _subject(d: Difference) -> str:
    """What a line inside a group talks about: ``column owner_id``, ``index ix_a``, ``""``."""
    if d.kind == "grant":
        column = d.name[len(d.parent) + 1 :] if d.parent and d.name != d.parent else ""
        return f"grant {d.attribute}" + (f" on column {column}" if column else "")
    if d.parent is None or d.name == d.parent:
        return ""
    local = d.name[len(d.parent) + 1 :] if d.name.startswith(d.parent + ".") else d.name
    return f"{KIND_WORDS.get(d.kind, d.kind)} {local}"


def _describe(obj: Any) -> str:
    """A one-line description of an object present on one side only."""
    if obj is None:
        return ""
    if isinstance(obj, Enum):
        return f"labels: {format_value(obj.labels)}"
    if isinstance(obj, Table):
        columns = ", ".join(f"{c.name} {format_value(c)}" for c in obj.columns)
        return format_value(f"columns: {columns}" if columns else "no columns")
    if isinstance(obj, Policy):
        parts = [f"FOR {obj.command}"]
        if obj.using is not None:
            parts.append(f"USING {obj.using}")
        if obj.with_check is not None:
            parts.append(f"WITH CHECK {obj.with_check}")
        return format_value(" ".join(parts))
    if isinstance(obj, Sequence):
        return format_value(
            f"{obj.data_type}, increment {obj.increment}"
            + (f", owned by {obj.owned_by}" if obj.owned_by else "")
        )
    if isinstance(obj, Extension):
        return f"version {obj.version} in schema {obj.schema}"
    if isinstance(obj, Domain):
        return format_value(obj.base_type)
    text = format_value(obj)
    return "" if text == getattr(obj, "name", None) else text


def _render_item(d: Difference, paint: _Painter) -> list[str]:
    subject = _subject(d)
    if d.category == "name":
        return [
            paint(
                f"  ~ {subject or KIND_WORDS.get(d.kind, d.kind)}: {d.message.split(': ', 1)[1]}",
                _YELLOW,
            )
        ]
    if d.attribute is None or d.kind == "grant":
        sign, colour = ("-", _RED) if d.category == "only_left" else ("+", _GREEN)
        obj = d.before if d.category == "only_left" else d.after
        detail = _describe(obj) if d.kind != "grant" else ""
        text = subject + (f": {detail}" if detail else "")
        return [paint(f"  {sign} {text}", colour)]
    attribute = d.attribute.replace("_", " ")
    label = f"{subject} {attribute}" if subject else attribute
    before, after = d.before, d.after
    if isinstance(before, str) and isinstance(after, str) and ("\n" in before or "\n" in after):
        out = [f"  {label}:"]
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1):
            if line.startswith(("---", "+++")):
                continue
            if line.startswith("@@"):
                out.append(paint(f"    {line}", _YELLOW))
            elif line.startswith("-"):
                out.append(paint(f"  - {line[1:]}", _RED))
            elif line.startswith("+"):
                out.append(paint(f"  + {line[1:]}", _GREEN))
            else:
                out.append(f"    {line[1:]}")
        return out
    return [
        paint(f"  - {label}: {format_value(before)}", _RED),
        paint(f"  + {label}: {format_value(after)}", _GREEN),
    ]
