"""The statement splitter, from :mod:`pytest_schemaguard.sqltext` (sqlglot's tokenizer).

Kept so that ``pytest_schemaguard.legacy.split`` names stay importable; new code imports
:mod:`pytest_schemaguard.sqltext`.
"""

from __future__ import annotations

from pytest_schemaguard.sqltext import (
    DecodeProblem,
    MetaCommand,
    SplitResult,
    Statement,
    one_line,
    split_file,
    split_sql,
)

__all__ = [
    "DecodeProblem",
    "MetaCommand",
    "SplitResult",
    "Statement",
    "one_line",
    "split_file",
    "split_sql",
]
