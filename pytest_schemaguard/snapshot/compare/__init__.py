"""Compare two snapshots object by object and explain every difference.

One small comparator per object kind turns a pair of snapshots into typed
:class:`Difference` objects, each with a one-line human message.  Objects are matched by name,
then (for constraints, indexes and sequences, whose names PostgreSQL often invents) by
definition: a pair that differs only in its name is a *name-only* difference, which a check can
ignore.  Column order is a difference category of its own.

This module is the dispatcher: :func:`compare` runs the comparator of each object family in a
fixed order.  The families live in their own modules:

- :mod:`~.schemas`: schemas, extensions;
- :mod:`~.types`: enums, domains, composite types, sequences;
- :mod:`~.tables`: tables and columns, then through :mod:`~.constraints`, :mod:`~.indexes`,
  :mod:`~.routines` (triggers) and :mod:`~.access` (policies, grants) everything on a table;
- :mod:`~.views`: views and materialized views;
- :mod:`~.routines`: functions, procedures, aggregates.

:mod:`~.differences` holds the :class:`Difference` type and its messages, :mod:`~.matching`
the pairing and field comparison every comparator uses, :mod:`~.ignore` the ignore patterns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pytest_schemaguard.snapshot.compare.differences import (
    KIND_WORDS,
    Category,
    Collector,
    Difference,
    Labels,
    format_value,
)
from pytest_schemaguard.snapshot.compare.ignore import (
    CATEGORY_WORDS,
    IgnoreRules,
    filter_differences,
)
from pytest_schemaguard.snapshot.compare.routines import compare_functions
from pytest_schemaguard.snapshot.compare.schemas import compare_extensions, compare_schemas
from pytest_schemaguard.snapshot.compare.tables import compare_tables
from pytest_schemaguard.snapshot.compare.types import (
    compare_composite_types,
    compare_domains,
    compare_enums,
    compare_sequences,
)
from pytest_schemaguard.snapshot.compare.views import compare_views
from pytest_schemaguard.snapshot.model import Snapshot

__all__ = [
    "CATEGORY_WORDS",
    "KIND_WORDS",
    "Category",
    "Difference",
    "IgnoreRules",
    "compare",
    "filter_differences",
    "format_value",
]

#: The comparator of each object family, in the order their differences are reported.
COMPARATORS: tuple[Callable[[Collector, Snapshot, Snapshot], None], ...] = (
    compare_schemas,
    compare_extensions,
    compare_enums,
    compare_domains,
    compare_composite_types,
    compare_sequences,
    compare_tables,
    compare_views,
    compare_functions,
)


def compare(
    left: Snapshot,
    right: Snapshot,
    *,
    left_label: str = "left",
    right_label: str = "right",
    ignore: IgnoreRules | Iterable[str] = (),
) -> list[Difference]:
    """Every difference between ``left`` and ``right``, in a stable order.

    ``left_label``/``right_label`` name the two sides in messages (``"parent schema"`` /
    ``"after downgrade"``, ``"migrations"`` / ``"models"``).  ``ignore`` drops differences (see
    :class:`IgnoreRules`).  Grants are compared only when both snapshots include them.
    """
    out = Collector(Labels(left_label, right_label))
    if left != right:
        for comparator in COMPARATORS:
            comparator(out, left, right)
    return filter_differences(out.out, ignore)
