"""The parity checks of one session: migrate once per target, compare, and queue baselines.

A :class:`ParityChecks` object serves one pytest process.  The migrated database of a target
(``head``, or the configured ``baseline_revision``) is built once and shared by the
``orm_parity`` and ``baseline`` checks; every database is dropped by :meth:`close`.  Baseline
writes (``--schemaguard-update-baseline``) are queued and written by :meth:`flush` at the end
of the session, each through a temporary file and a rename.

This module does not import pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_schemaguard.config import Settings
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.alembic_driver import AlembicProject
from pytest_schemaguard.migrations.history import History
from pytest_schemaguard.migrations.runner import CheckResult
from pytest_schemaguard.parity.migrated import Migrated, MigrationFailed, migrate_to
from pytest_schemaguard.parity.migrated import snapshot_database as _snapshot_database
from pytest_schemaguard.parity.orm import (
    MIGRATIONS,
    MODELS,
    compare_orm,
    create_models,
    parity_ignore_rules,
    split_differences,
)
from pytest_schemaguard.parity.sources import ModelSources, sources_of
from pytest_schemaguard.report.findings import Finding, finding_of
from pytest_schemaguard.snapshot.compare import compare
from pytest_schemaguard.snapshot.model import Snapshot
from pytest_schemaguard.snapshot.render import summary_line
from pytest_schemaguard.timeouts import Watchdog

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import MetaData

    from pytest_schemaguard.parity.baseline import Refusal

__all__ = ["UPDATE_COMMAND", "ParityChecks", "PendingWrite"]

UPDATE_COMMAND = "pytest --schemaguard --schemaguard-update-baseline"


@dataclass(frozen=True)
class PendingWrite:
    """A baseline to write at the end of the session."""

    path: Path
    content: str
    shown: str
    """The path as messages show it (relative to the configuration)."""


@dataclass
class ParityChecks:
    """Runs ``orm_parity`` and ``baseline`` for one Alembic project."""

    project: AlembicProject
    history: History
    settings: Settings
    server: Any
    """A :class:`~pytest_schemaguard.server.PostgresServer`."""
    config_factory: Callable[[str], Config]
    template: Callable[[], str | None] = lambda: None
    """The database migrations start from (a bootstrapped ``start``), made on demand."""
    skip: frozenset[str] = frozenset()
    """Revisions already applied in the template."""
    failed_upgrade_selected: Callable[[str], bool] = lambda rev: False
    """Whether the ``upgrade`` item of a revision runs in this session (then a parity check
    that needs it is skipped rather than failed when it fails)."""
    known_head: Callable[[], Snapshot | None] = lambda: None
    """The schema at head if the migration checks have already read it (else ``None``)."""
    pending: dict[Path, PendingWrite] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """For the terminal summary: what a baseline replay set aside (``--clean``/``--create``)."""
    write_errors: list[str] = field(default_factory=list)
    """Baselines :meth:`flush` could not write (``cannot write baseline ...: ...``)."""
    _migrated: dict[str, Migrated | MigrationFailed] = field(default_factory=dict)
    _models: Snapshot | SchemaguardError | None = None
    _scratch: list[Any] = field(default_factory=list)

    # ------------------------------------------------------------------ migrated schemas
    def migrated(self, target: str) -> Migrated:
        """The scratch database migrated to ``target`` (built once per session)."""
        cached = self._migrated.get(target)
        if cached is None:
            try:
                cached = migrate_to(
                    self.project,
                    self.history,
                    self.server,
                    self.config_factory,
                    target,
                    template=self.template(),
                    skip=self.skip,
                )
            except MigrationFailed as exc:
                cached = exc
            self._migrated[target] = cached
        if isinstance(cached, MigrationFailed):
            raise cached
        return cached

    def head_snapshot(self) -> Snapshot:
        """The schema at head: the one the migration checks read after upgrading from base
        when they have, else that of :meth:`migrated` ``("head")``."""
        known = self.known_head()
        if known is not None and "head" not in self._migrated:
            return known
        return self.migrated("head").snapshot

    def models_snapshot(self, metadata: MetaData) -> Snapshot:
        """The schema ``metadata.create_all`` builds (after the preamble SQL), made once per
        session; :class:`SchemaguardError` when the models cannot be created."""
        if self._models is None:
            db = self.scratch()
            try:
                create_models(
                    db.url,
                    metadata,
                    self.settings.preamble_sql,
                    step_timeout=self.settings.step_timeout,
                )
                self._models = _snapshot_database(db.url)
            except SchemaguardError as exc:
                self._models = exc
            finally:
                self.drop(db)
        if isinstance(self._models, SchemaguardError):
            raise self._models
        return self._models

    def _migration_failure(self, title: str, exc: MigrationFailed) -> CheckResult:
        step = exc.error.step if exc.error is not None else None
        if step is not None and self.failed_upgrade_selected(step.revision):
            reason = f"needs {self.history.label(step.revision)}, whose upgrade failed"
            return CheckResult("skipped", title, [reason])
        cause = exc.error.cause() if exc.error is not None and exc.error.step is None else None
        return CheckResult("failed", title, exc.lines(), cause=cause)

    def scratch(self) -> Any:
        db = self.server.create_database()
        self._scratch.append(db)
        return db

    def drop(self, db: Any) -> None:
        if db in self._scratch:
            self._scratch.remove(db)
        # best effort: the server drops every scratch database at the end anyway
        with contextlib.suppress(Exception):
            self.server.drop_database(db)

    def close(self) -> None:
        """Drop every database the checks made."""
        for item in list(self._migrated.values()):
            if isinstance(item, Migrated):
                self.drop(item.database)
        self._migrated.clear()
        for db in list(self._scratch):
            self.drop(db)

    # ------------------------------------------------------------------ orm_parity
    def orm_title(self) -> str:
        source = self.settings.metadata or "the schemaguard_metadata fixture"
        return f"orm_parity: the models ({source}) against the migrations at head"

    def orm_parity(self, metadata: MetaData) -> CheckResult:
        title = self.orm_title()
        try:
            migrated = self.migrated("head")
        except MigrationFailed as exc:
            return self._migration_failure(title, exc)
        if not metadata.tables and migrated.snapshot.tables:
            return CheckResult("failed", title, [self._no_tables()])
        models_db = self.scratch()
        try:
            result = compare_orm(
                migrated.snapshot,
                models_db.url,
                metadata,
                migrated_url=migrated.database.url,
                preamble_sql=self.settings.preamble_sql,
                ignore=self.settings.ignore,
                column_order=self.settings.column_order,
                version_table=migrated.version_table_qualified,
            )
        finally:
            self.drop(models_db)
        if result.models_error is not None:
            # no catalog comparison without the models; Alembic's view needs no create_all
            if self._models is None:
                self._models = result.models_error
            lines = str(result.models_error).splitlines()
            return CheckResult(
                "failed", title, lines + _alembic_lines(result.alembic, result.alembic_error)
            )
        if self._models is None:
            self._models = result.models
        lines = []
        # each difference names where the model object is written, when it can be found
        sources = (
            sources_of(metadata, self.settings.root)
            if result.failures or result.warnings
            else ModelSources()
        )
        findings: list[Finding] = []
        if result.failures:
            lines.append("the models differ from the schema the migrations build at head:")
            for d in result.failures:
                text = d.message + sources.suffix(d)
                lines.append("  " + text)
                findings.append(_model_finding(d, sources, text, self.settings.root))
            lines.append(summary_line(result.failures, left_label=MIGRATIONS, right_label=MODELS))
        lines.extend(_alembic_lines(result.alembic, result.alembic_error))
        warnings = [d.message + sources.suffix(d) for d in result.warnings]
        if not result.failures:
            if result.alembic:
                # The catalog agrees; say what autogenerate would still do, without failing.
                warnings.append(
                    "the schemas agree, but alembic autogenerate would emit: "
                    + "; ".join(result.alembic)
                )
            return CheckResult("passed", title, [], warnings)
        return CheckResult("failed", title, lines, warnings, findings=findings)

    def _no_tables(self) -> str:
        source = self.settings.metadata
        if not source:
            return (
                "the schemaguard_metadata fixture returned a MetaData with no tables: import "
                "the model modules before returning it"
            )
        return (
            f"{source} holds no tables (are the model modules imported only when the "
            "application starts?): point metadata at a function that imports them and returns "
            'the MetaData, e.g. metadata = "myapp.models:load_models"'
        )

    # ------------------------------------------------------------------ baseline
    def baseline_path(self) -> tuple[Path, str]:
        assert self.settings.baseline is not None
        return self.settings.path(self.settings.baseline), self.settings.baseline

    def baseline_title(self) -> str:
        _path, shown = self.baseline_path()
        return f"baseline: {shown} against the migrations at {self._target_label()}"

    def _target_label(self) -> str:
        target = self.settings.baseline_revision
        if target in ("head", "heads"):
            return "head"
        rev = self.history.resolve(target)
        return self.history.describe(rev) if rev else target

    def baseline(self) -> CheckResult:
        # imported here: the baseline replay brings sqlglot, which a run without a baseline
        # does not need at start-up
        from pytest_schemaguard.parity.baseline import drop_roles, plan_replay, run_plan

        title = self.baseline_title()
        path, shown = self.baseline_path()
        target = self.settings.baseline_revision
        try:
            migrated = self.migrated(target)
        except MigrationFailed as exc:
            return self._migration_failure(title, exc)
        except SchemaguardError as exc:
            return CheckResult("failed", title, [str(exc)])
        if self.settings.update_baseline:
            return self._update(title, path, shown, migrated)
        if not path.is_file():
            return CheckResult(
                "failed",
                title,
                [
                    f"the baseline file {shown} does not exist ({path}).",
                    f"Create it from the migrations at {migrated.label} with:",
                    f"    {UPDATE_COMMAND}",
                ],
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return CheckResult("failed", title, [f"cannot read {shown}: {exc}"])
        # The whole file is classified before anything of it runs.
        plan = plan_replay(text, file=shown)
        if plan.refused:
            return CheckResult("failed", title, _refusal_lines(shown, plan.refused))
        note = plan.report.note()
        if note is not None:
            self.notes.append(f"baseline {shown}: {note}")
        replayed = self.scratch()
        # Roles are cluster-wide: create the ones the baseline names only on our own server.
        own_server = self.server.source != "dsn"
        created: list[str] = []
        try:
            # the one place the baseline's statements run; step_timeout cancels a statement
            # still running then (only the replay connects to this scratch database)
            timeout = self.settings.step_timeout
            with Watchdog(timeout, replayed.dsn, database=replayed.name) as watch:
                report = run_plan(plan, replayed.dsn, create_roles=own_server)
            created = report.created_roles
            snapshot = _snapshot_database(replayed.url, exclude_tables=(migrated.version_table,))
        finally:
            self.drop(replayed)
            if created:
                # gone with the database, so that later checks do not see them
                with contextlib.suppress(Exception), self.server.admin() as conn:
                    drop_roles(conn, created)
        label = f"migrations at {migrated.label}"
        rules = parity_ignore_rules(self.settings.ignore)
        differences = compare(
            snapshot, migrated.snapshot, left_label="baseline", right_label=label, ignore=rules
        )
        failures, warnings = split_differences(differences, column_order=self.settings.column_order)
        lines: list[str] = []
        if watch.fired:
            lines.append(f"replaying {shown}: {watch.explain('')} (listed below)")
        if report.problems:
            lines.append(f"{len(report.problems)} statement(s) of {shown} failed to replay:")
            for problem in report.problems:
                lines.extend("  " + line for line in problem.render().splitlines())
        if report.missing_roles:
            count = len(report.missing_roles)
            lines.append(
                f"{count} statement(s) of {shown} not replayed: they name roles this server "
                "does not have, and schemaguard does not create roles on a server it did not "
                "start (--schemaguard-dsn; roles belong to the whole cluster):"
            )
            for problem in report.missing_roles:
                lines.extend("  " + line for line in problem.render().splitlines())
            lines.append(
                "  The migrations cannot have built these objects on this server either. Create "
                "the roles there (CREATE ROLE name NOLOGIN), or run without --schemaguard-dsn: "
                "schemaguard's own server creates them for the replay."
            )
        if failures:
            lines.append(
                f"{shown} differs from the schema the migrations build at {migrated.label}:"
            )
            lines.extend("  " + d.message for d in failures)
            lines.append(summary_line(failures, left_label="baseline", right_label=label))
        if lines:
            lines.append(
                f"If the migrations are right, rewrite the baseline with: {UPDATE_COMMAND}"
            )
            return CheckResult(
                "failed",
                title,
                lines,
                [d.message for d in warnings],
                findings=[finding_of(d, "baseline", label) for d in failures],
            )
        return CheckResult("passed", title, [], [d.message for d in warnings])

    def _update(self, title: str, path: Path, shown: str, migrated: Migrated) -> CheckResult:
        from pytest_schemaguard.parity.baseline import cannot_write, dump_schema, probe_writable

        db = migrated.database
        server = self.server
        parts = {
            "host": server.host,
            "port": server.port,
            "user": server.user,
            "password": server.password,
            "dbname": db.name,
        }
        header = [
            f"Schema baseline: the schema the migrations build at {migrated.label}.",
            f"Written by `{UPDATE_COMMAND}`; compared by the baseline check.",
        ]
        try:
            content = dump_schema(
                server.pg_dump_path(),
                parts,
                exclude_tables=(migrated.version_table_qualified,),
                header=header,
            )
        except SchemaguardError as exc:
            return CheckResult("failed", title, [str(exc)])
        try:
            probe_writable(path)
        except OSError as exc:
            return CheckResult("failed", title, [cannot_write(shown, exc)])
        self.pending[path] = PendingWrite(path, content, shown)
        return CheckResult("passed", title)

    def flush(self) -> None:
        """Write the queued baselines (skipping files whose content is already right)."""
        from pytest_schemaguard.parity.baseline import cannot_write, write_atomically

        for write in self.pending.values():
            try:
                current = write.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                current = None
            if current == write.content:
                self.unchanged.append(write.shown)
                continue
            try:
                write_atomically(write.path, write.content)
            except OSError as exc:
                # the old file is left as it was (the write goes through a temporary file)
                self.write_errors.append(cannot_write(write.shown, exc))
                continue
            self.written.append(write.shown)
        self.pending.clear()


def _refusal_lines(shown: str, refused: Sequence[Refusal]) -> list[str]:
    count = len(refused)
    lines = [
        f"{shown} holds {count} statement{'s' if count > 1 else ''} that "
        f"{'are' if count > 1 else 'is'} not schema DDL, so nothing of it was executed:"
    ]
    for refusal in refused:
        lines.extend("  " + line for line in refusal.render(shown))
    lines.append(
        "A baseline holds what pg_dump --schema-only writes for one database (see "
        '"What a baseline may contain" in the baseline docs); rewrite it from the migrations '
        f"with: {UPDATE_COMMAND}"
    )
    return lines


def _alembic_lines(operations: Sequence[str], error: str | None) -> list[str]:
    if error is not None:
        return [f"alembic autogenerate could not compare: {error}"]
    if not operations:
        return ["alembic autogenerate sees no difference"]
    return [
        f"alembic autogenerate sees {len(operations)} operation(s):",
        *("  " + op for op in operations),
    ]


def _model_finding(difference: Any, sources: ModelSources, message: str, root: Path) -> Finding:
    """The finding of an orm_parity difference, pointing at the model's ``file:line`` (an
    absolute path) when the object is written in a mapped class or a ``Table``."""
    finding = finding_of(difference, MIGRATIONS, MODELS, message=message)
    try:
        place = sources.locate(difference)
    except Exception:  # never let a place that cannot be named break the check
        place = None
    if place is None:
        return finding
    return dataclasses.replace(finding, file=str(root / place.file), line=place.line)
