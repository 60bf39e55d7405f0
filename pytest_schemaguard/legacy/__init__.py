"""Legacy DDL check: parse SQL scripts and compare what they say with the real schema.

No pytest here; the pytest items call :func:`analyse_files`, :func:`check_against_schema`,
:func:`check_fk_types` and :func:`render_findings`.
"""

from __future__ import annotations

from pytest_schemaguard.legacy.analysis import (
    LegacyAnalysis,
    analyse_files,
    analyse_sql,
    expand_globs,
)
from pytest_schemaguard.legacy.check import (
    Finding,
    check_against_schema,
    check_fk_types,
    findings_by_file,
    render_findings,
)

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
