"""The ``live_drift`` check: the live database's schema against the schema the migrations
build at the revision it is stamped with, and (when configured) against the models and the
baseline.

:func:`check_drift` is shared by the pytest item and the ``schemaguard-drift`` command: it
reads the live database (:func:`read_project_live`: the stamp in the version table the
project's env.py configures, learnt by running env.py on a scratch database), decides what to
compare it with (:func:`drift_target`), and builds the migrated side through
:class:`~pytest_schemaguard.parity.checks.ParityChecks` (a scratch database on the plugin's
server, never on the live one).

This module does not import pytest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_schemaguard.drift.live import LiveError, LiveSchema, VersionTable, read_live
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.history import History
from pytest_schemaguard.migrations.runner import CheckResult
from pytest_schemaguard.report.findings import Finding, finding_of
from pytest_schemaguard.snapshot.compare import Difference, compare
from pytest_schemaguard.snapshot.model import Snapshot
from pytest_schemaguard.snapshot.render import summary_line
from pytest_schemaguard.urls import mask_url

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection

    from pytest_schemaguard.migrations.alembic_driver import Step
    from pytest_schemaguard.parity.checks import ParityChecks

__all__ = [
    "LIVE",
    "DriftTarget",
    "check_drift",
    "compare_live",
    "drift_target",
    "project_version_table",
    "read_project_live",
]

LIVE = "live"
"""How messages name the live database's side."""


@dataclass(frozen=True)
class DriftTarget:
    """What the live database is compared with."""

    ref: str
    """The revision to migrate to (an id, or ``head``)."""
    revision: str | None
    """The revision id the live database is stamped with, when the project has it."""
    label: str
    """``migrations at c47d19e2f035`` / ``migrations at head``."""
    lines: list[str] = field(default_factory=list)
    """What to say about the stamp (always shown)."""
    failure: bool = False
    """The stamp itself is drift (unknown to the project)."""
    stop: bool = False
    """Nothing can be compared (several stamped revisions that are not the heads)."""


def _heads(history: History) -> str:
    return ", ".join(history.describe(h) for h in history.heads) or "none"


def _no_steps(conn: Connection) -> Iterator[Step]:
    return iter(())


def project_version_table(parity: ParityChecks) -> VersionTable:
    """The version table the project's env.py configures (``version_table``,
    ``version_table_schema``), learnt by running env.py once as ``alembic current`` does (no
    step, no version table created) on a scratch database of the plugin's server, never on the
    live one.

    Raises :class:`~pytest_schemaguard.parity.migrated.MigrationFailed` when env.py fails
    there or never calls ``run_migrations()``.
    """
    from pytest_schemaguard.parity.migrated import MigrationFailed

    project = parity.project
    db = parity.server.create_database(template=parity.template())
    try:
        outcome = project.run_on(
            parity.config_factory, _no_steps, database=db.name, url=db.url, dont_mutate=True
        )
    finally:
        parity.drop(db)
    what = "running env.py to learn its version table failed"
    if outcome.error is not None:
        failed = "env.py failed" if outcome.error.hook is None else outcome.error.headline()
        raise MigrationFailed(f"{what}: {failed.rstrip(':')}", outcome.error)
    if not outcome.configured:
        raise MigrationFailed(f"{what}: env.py never called run_migrations()")
    schema = outcome.version_table_schema
    name = outcome.version_table.removeprefix(f"{schema or 'public'}.")
    return VersionTable(name, schema)


def read_project_live(
    parity: ParityChecks, dsn: str, *, conn: psycopg.Connection[Any] | None = None
) -> LiveSchema:
    """:func:`~pytest_schemaguard.drift.live.read_live` of the project's version table
    (:func:`project_version_table`), on ``conn`` when given (see ``read_live``).  Raises
    :class:`LiveError`, or ``MigrationFailed`` as ``project_version_table`` does."""
    return read_live(dsn, project_version_table(parity), conn=conn)


def drift_target(live: LiveSchema, history: History) -> DriftTarget:
    """The revision the live database claims to be at, and how the output says so."""
    stamped = live.stamped
    if not stamped:
        why = (
            f"has no {live.looked_for} table"
            if live.version_table is None
            else f"has an empty {live.version_table}"
        )
        return DriftTarget(
            "head",
            None,
            "migrations at head",
            [
                f"the live database {why} (never stamped): compared with the migrations at "
                f"head, {_heads(history)}"
            ],
        )
    unknown = [rev for rev in stamped if history.resolve(rev) != rev]
    if unknown:
        return DriftTarget(
            "head",
            None,
            "migrations at head",
            [
                f"the live database is stamped at {', '.join(unknown)}, which this project's "
                f"migrations do not have: it is ahead of the project's head {_heads(history)} "
                "(a newer release was deployed there?) or on a branch this project does not "
                "have; compared with the migrations at head"
            ],
            failure=True,
        )
    if len(stamped) > 1:
        if set(stamped) == set(history.heads):
            return DriftTarget(
                "head",
                None,
                "migrations at head",
                [f"the live database is stamped at the project's heads, {_heads(history)}"],
            )
        return DriftTarget(
            "head",
            None,
            "migrations at head",
            [
                "the live database is stamped at several revisions, "
                f"{', '.join(history.describe(r) for r in stamped)}, which are not the "
                f"project's heads ({_heads(history)}): live_drift compares a database stamped "
                "at one revision or at all the heads"
            ],
            failure=True,
            stop=True,
        )
    rev = stamped[0]
    where = (
        " (the project's head)"
        if rev in history.heads
        else f"; the project's head is {_heads(history)}"
    )
    return DriftTarget(
        rev,
        rev,
        f"migrations at {history.short(rev)}",
        [f"the live database is stamped at {history.describe(rev)}{where}"],
    )


def compare_live(
    expected: Snapshot,
    live: Snapshot,
    *,
    label: str,
    ignore: tuple[str, ...],
    column_order: str,
) -> tuple[list[Difference], list[Difference]]:
    """(failures, warnings) of ``live`` against ``expected`` (named ``label``)."""
    from pytest_schemaguard.parity.orm import parity_ignore_rules, split_differences

    differences = compare(
        expected, live, left_label=label, right_label=LIVE, ignore=parity_ignore_rules(ignore)
    )
    return split_differences(differences, column_order=column_order)


def check_drift(
    parity: ParityChecks,
    *,
    live: LiveSchema | None = None,
    metadata: MetaData | None = None,
    dsn: str | None = None,
) -> CheckResult:
    """The ``live_drift`` result for the live database at ``dsn`` (default: the
    ``live_dsn`` setting); ``live`` when it has been read already."""
    settings = parity.settings
    dsn = dsn or settings.live_dsn
    if dsn is None:
        raise SchemaguardError("no live database: set --schemaguard-live-dsn")
    from pytest_schemaguard.parity.migrated import MigrationFailed

    if live is None:
        try:
            live = read_project_live(parity, dsn)
        except LiveError as exc:
            title = f"live_drift: the live database {mask_url(dsn)}"
            return CheckResult("failed", title, [str(exc)])
        except MigrationFailed as exc:
            title = f"live_drift: the live database {mask_url(dsn)}"
            return CheckResult("failed", title, exc.lines())
    history = parity.history
    target = drift_target(live, history)
    title = f"live_drift: the live database {live.shown} against the {target.label}"
    lines = list(target.lines)
    findings: list[Finding] = []
    warnings: list[str] = []
    failed = target.failure
    if target.stop:
        return CheckResult("failed", title, lines)
    try:
        if target.ref == "head":
            expected = parity.head_snapshot()
        else:
            expected = parity.migrated(target.ref).snapshot
    except MigrationFailed as exc:
        return CheckResult("failed", title, [*lines, *exc.lines()])
    except SchemaguardError as exc:
        return CheckResult("failed", title, [*lines, str(exc)])
    sides: list[tuple[str, str, Callable[[], Snapshot]]] = [
        (
            target.label,
            f"the schema the {target.label.replace(' at ', ' build at ')}",
            lambda: expected,
        )
    ]
    at_head = target.ref == "head" or target.revision in history.heads
    where = history.describe(target.revision) if target.revision else "head"
    if metadata is not None:
        if at_head:
            models = metadata
            sides.append(
                ("models", "the schema the models build", lambda: parity.models_snapshot(models))
            )
        else:
            lines.append(
                f"not compared with the models: they describe head, the live database is at {where}"
            )
    if settings.baseline:
        shown = settings.baseline
        described = settings.baseline_revision
        if described in ("head", "heads"):
            baseline_here = at_head
        else:
            baseline_here = history.resolve(described) == target.revision
        if baseline_here:
            sides.append(("baseline", f"the baseline {shown}", lambda: baseline_snapshot(parity)))
        else:
            lines.append(
                f"not compared with the baseline {shown}: it describes {described}, the live "
                f"database is at {where}"
            )
    for label, what, build in sides:
        try:
            snapshot = build()
        except SchemaguardError as exc:
            failed = True
            lines.append(f"not compared with {what}: {str(exc).splitlines()[0]}")
            continue
        failures, column_order = compare_live(
            snapshot,
            live.snapshot,
            label=label,
            ignore=settings.ignore,
            column_order=settings.column_order,
        )
        warnings += [d.message for d in column_order]
        if failures:
            failed = True
            lines.append(f"the live database differs from {what}:")
            lines.extend("  " + d.message for d in failures)
            lines.append(summary_line(failures, left_label=label, right_label=LIVE))
            findings += [finding_of(d, label, LIVE) for d in failures]
    if not failed:
        # a passing item says only what a reader should know: that it was compared with head
        # for want of a stamp, or what it was not compared with
        notes = lines if target.revision is None else lines[len(target.lines) :]
        return CheckResult("passed", title, [], warnings, notes=notes)
    location = None
    if target.revision is not None:
        location = (history.info(target.revision).path, 1)
    return CheckResult("failed", title, lines, warnings, location=location, findings=findings)


def baseline_snapshot(parity: ParityChecks) -> Snapshot:
    """The schema of the configured baseline file, replayed in a scratch database."""
    from pytest_schemaguard.parity.baseline import drop_roles, plan_replay, run_plan
    from pytest_schemaguard.parity.migrated import snapshot_database
    from pytest_schemaguard.timeouts import Watchdog

    path, shown = parity.baseline_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaguardError(f"cannot read {shown}: {exc}") from None
    plan = plan_replay(text, file=shown)
    if plan.refused:
        raise SchemaguardError(
            f"{shown} holds statements that are not schema DDL (see the baseline check)"
        )
    replayed = parity.scratch()
    own_server = parity.server.source != "dsn"
    created: list[str] = []
    try:
        # step_timeout cancels a statement still running then, as in the baseline check
        with Watchdog(parity.settings.step_timeout, replayed.dsn, database=replayed.name) as watch:
            report = run_plan(plan, replayed.dsn, create_roles=own_server)
        created = report.created_roles
        if watch.fired:
            raise SchemaguardError(f"replaying {shown}: {watch.explain('')}")
        if report.problems:
            raise SchemaguardError(
                f"{len(report.problems)} statement(s) of {shown} failed to replay (see the "
                "baseline check)"
            )
        return snapshot_database(replayed.url)
    finally:
        parity.drop(replayed)
        if created:
            with contextlib.suppress(Exception), parity.server.admin() as conn:
                drop_roles(conn, created)
