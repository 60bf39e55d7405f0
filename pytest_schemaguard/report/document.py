"""The three outputs of a run for CI, built from plain item records: the JSON report, the
Markdown summary, and GitHub Actions workflow annotations.

An item record is a dict with ``nodeid``, ``check``, ``revision``, ``file``, ``line``,
``outcome`` (``passed``, ``failed``, ``skipped``, ``error``), ``duration``, ``message``,
``lines`` and ``findings`` (see ``schema.json`` beside this module, which the JSON report
follows).  Every string that goes out is passed through
:func:`~pytest_schemaguard.urls.mask_url` (and the known passwords are replaced), so no
password is ever written.

This module does not import pytest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

from pytest_schemaguard.urls import mask_url

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "OUTCOMES",
    "build_document",
    "load_schema",
    "markdown_summary",
    "masked",
    "workflow_annotations",
]

FORMAT = "pytest-schemaguard-report"
FORMAT_VERSION = 1
OUTCOMES = ("failed", "error", "passed", "skipped")

#: How many failures the Markdown summary lists, and how many lines of each it shows (a
#: pull-request comment stays readable; the JSON report has everything).
SUMMARY_FAILURES = 20
SUMMARY_LINES = 12


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report (shipped in the package)."""
    text = resources.files("pytest_schemaguard.report").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def masked(value: Any, secrets: Sequence[str] = ()) -> Any:
    """``value`` with every password in its strings masked (recursively)."""
    if isinstance(value, str):
        return mask_url(value, tuple(secrets))
    if isinstance(value, Mapping):
        return {key: masked(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [masked(item, secrets) for item in value]
    return value


def counts(items: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(OUTCOMES, 0)
    for item in items:
        out[item["outcome"]] += 1
    return out


def build_document(
    items: Sequence[Mapping[str, Any]],
    *,
    tool_version: str,
    postgresql_version: str | None,
    exit_status: int,
    secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON report of a run."""
    total = counts(items)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool": {"name": "pytest-schemaguard", "version": tool_version},
        "postgresql": {"version": postgresql_version},
        "exit_status": exit_status,
        "summary": {**total, "total": len(items)},
        "items": [dict(item) for item in items],
    }
    result: dict[str, Any] = masked(document, secrets)
    return result


def _counts_line(items: Sequence[Mapping[str, Any]]) -> str:
    total = counts(items)
    parts = [f"{total[o]} {o}" for o in OUTCOMES if total[o]]
    return ", ".join(parts) if parts else "no checks ran"


def _place(item: Mapping[str, Any]) -> str:
    file = item.get("file")
    if not file:
        return ""
    line = item.get("line")
    return f"{file}:{line}" if line else str(file)


def markdown_summary(
    items: Sequence[Mapping[str, Any]],
    *,
    tool_version: str,
    postgresql_version: str | None,
    secrets: Sequence[str] = (),
) -> str:
    """The Markdown summary: a heading with the counts, a table per check, then each failure
    grouped by check (capped, so that it fits a pull-request comment)."""
    server = f"PostgreSQL {postgresql_version}, " if postgresql_version else ""
    out = [
        f"## schemaguard: {_counts_line(items)}",
        "",
        f"{server}pytest-schemaguard {tool_version}",
        "",
        "| check | passed | failed | skipped |",
        "|---|---:|---:|---:|",
    ]
    by_check: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        by_check.setdefault(str(item.get("check")), []).append(item)
    for check, group in by_check.items():
        total = counts(group)
        out.append(
            f"| {check} | {total['passed']} | {total['failed'] + total['error']} "
            f"| {total['skipped']} |"
        )
    shown = 0
    failing = [i for i in items if i["outcome"] in ("failed", "error")]
    for check, group in by_check.items():
        failures = [i for i in group if i["outcome"] in ("failed", "error")]
        if not failures:
            continue
        out += ["", f"### {check}: {len(failures)} failed", ""]
        for item in failures:
            if shown == SUMMARY_FAILURES:
                break
            shown += 1
            place = _place(item)
            where = f" at `{place}`" if place else ""
            out.append(f"**`{item['nodeid']}`**{where}: {item.get('message') or item['outcome']}")
            lines = [line.rstrip() for line in item.get("lines", []) if line.strip()]
            if lines:
                out += ["", "```text", *lines[:SUMMARY_LINES]]
                if len(lines) > SUMMARY_LINES:
                    out.append(f"… {len(lines) - SUMMARY_LINES} more line(s) in the JSON report")
                out.append("```")
            out.append("")
    if len(failing) > shown:
        out += [f"… and {len(failing) - shown} more failure(s): see the JSON report.", ""]
    while out and not out[-1]:
        out.pop()
    # one blank line between blocks
    text = "\n".join(line for i, line in enumerate(out) if line or (i and out[i - 1]))
    return mask_url(text, tuple(secrets)) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_annotations(
    items: Sequence[Mapping[str, Any]],
    *,
    secrets: Sequence[str] = (),
    place: Callable[[str | None], str | None] = lambda file: file,
) -> list[str]:
    """GitHub Actions ``::error`` workflow commands for the failed items: one per finding
    that names its own file and line (a statement of a SQL script, a model's line, the line of
    a revision that sent a risky statement, failed on rows or created a mistyped foreign key),
    and one per item at its file and line (the ``downgrade()`` to fix, the revision file)
    unless every finding of the item was annotated at its own place.  ``place`` maps a file
    as the report names it to the path GitHub resolves."""
    hidden = tuple(secrets)

    def command(file: str | None, line: int | None, check: str, text: str) -> str:
        properties = []
        file = place(file)
        if file:
            properties.append(f"file={_escape_property(mask_url(file, hidden))}")
            properties.append(f"line={line or 1}")
        properties.append(f"title={_escape_property('schemaguard ' + check)}")
        return f"::error {','.join(properties)}::{_escape_data(mask_url(text, hidden))}"

    out = []
    for item in items:
        if item["outcome"] not in ("failed", "error"):
            continue
        check = str(item.get("check"))
        message = str(item.get("message") or item["outcome"])
        findings = item.get("findings", [])
        located = [f for f in findings if f.get("file") and f.get("line")]
        for finding in located:
            text = f"{message}\n{finding['message']}"
            out.append(command(finding["file"], finding["line"], check, text))
        if located and len(located) == len(findings):
            continue
        # the rest (or all of it) at the item's own place
        text = "\n".join([message, *item.get("lines", [])])
        out.append(command(item.get("file"), item.get("line"), check, text))
    return out
