"""Reports of a run for CI systems and reviewers: the JSON report (``--schemaguard-report``),
the Markdown summary (``--schemaguard-summary``) and GitHub Actions annotations.

:mod:`~.findings` holds the structured findings checks attach to their results,
:mod:`~.document` builds the three outputs from plain data, and :mod:`~.plugin` collects the
items' reports in a pytest run (on the xdist controller) and writes them.  Only
:mod:`~.plugin` imports pytest; it is registered only when an output is asked for.
"""

from __future__ import annotations

from pytest_schemaguard.report.findings import Finding, finding_of

__all__ = ["Finding", "finding_of"]
