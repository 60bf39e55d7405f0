"""Legacy DDL check: parse SQL scripts and compare what they say with the real schema.

No pytest here; the pytest items call :func:`analyse_files`, :func:`check_against_schema`,
:func:`check_fk_types` and :func:`render_findings`.

The names below are loaded on first use, so that importing a submodule (or this package) does
not import the parser and the checks: a project without ``legacy_ddl`` never loads them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_schemaguard.legacy.analysis import (
        LegacyAnalysis,
        analyse_files,
        analyse_sql,
        expand_globs,
    )
    from pytest_schemaguard.legacy.check import (
        check_against_schema,
        findings_by_file,
        render_findings,
    )
    from pytest_schemaguard.legacy.fk_types import Finding, check_fk_types

__all__ = [
    "Finding",
    "LegacyAnalysis",
    "analyse_files",
    "analyse_sql",
    "check_against_schema",
    "check_fk_types",
    "expand_globs",
    "findings_by_file",
    "render_findings",
]

_HOMES = {
    "LegacyAnalysis": "analysis",
    "analyse_files": "analysis",
    "analyse_sql": "analysis",
    "expand_globs": "analysis",
    "Finding": "fk_types",
    "check_against_schema": "check",
    "check_fk_types": "fk_types",
    "findings_by_file": "check",
    "render_findings": "check",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
