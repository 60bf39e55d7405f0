"""The migrated side of a parity check: a scratch database migrated to a revision.

The migrations run through the Alembic driver of the migration checks
(:meth:`~pytest_schemaguard.migrations.alembic_driver.AlembicProject.run_pass`): one ``env.py``
pass applies the revisions the target needs, in topological order, and the schema is read on
the migration connection right after the last step.

This module does not import pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.alembic_driver import (
    AlembicProject,
    PassOutcome,
    Step,
    StepError,
)
from pytest_schemaguard.migrations.history import History
from pytest_schemaguard.snapshot.introspect import DEFAULT_EXCLUDED_TABLES, take_snapshot
from pytest_schemaguard.snapshot.model import Snapshot

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

__all__ = [
    "Migrated",
    "MigrationFailed",
    "migrate_to",
    "resolve_target",
    "snapshot_database",
]


class MigrationFailed(SchemaguardError):
    """Migrating the scratch database to the target revision failed."""

    def __init__(self, message: str, error: StepError | None = None) -> None:
        super().__init__(message)
        self.error = error

    def lines(self) -> list[str]:
        out = [str(self)]
        if self.error is not None:
            out.extend(self.error.render())
        return out


@dataclass
class Migrated:
    """A scratch database migrated to ``revisions`` (the caller drops ``database``)."""

    database: Any
    """The scratch database (a :class:`~pytest_schemaguard.server.Database`)."""
    snapshot: Snapshot
    revisions: tuple[str, ...]
    """The target revisions (the heads, for ``head``)."""
    label: str
    """How messages name the target: ``head``, ``3f2a9c (add status)``."""
    version_table: str
    """The Alembic version table (unqualified), left out of the snapshot."""
    version_table_qualified: str = "public.alembic_version"


def resolve_target(history: History, ref: str) -> tuple[tuple[str, ...], str]:
    """The revisions ``ref`` names (``head``/``heads``, an id or a unique id prefix) and a
    label for messages; :class:`SchemaguardError` when it names none."""
    if not history.sound:
        raise SchemaguardError(
            "the migration history is broken (see the history check); nothing can be migrated"
        )
    if ref in ("head", "heads"):
        return tuple(history.heads), "head"
    rev = history.resolve(ref)
    if rev is None:
        raise SchemaguardError(
            f"revision {ref!r} is not in the migration history (or is an ambiguous prefix)"
        )
    return (rev,), history.describe(rev)


def migrate_to(
    project: AlembicProject,
    history: History,
    server: Any,
    config_factory: Callable[[str], Config],
    target: str,
    *,
    template: str | None = None,
    skip: frozenset[str] = frozenset(),
    observe: Callable[[Connection, str | None], None] | None = None,
) -> Migrated:
    """A new scratch database (cloned from ``template``) migrated to ``target``.

    ``skip`` holds revisions already applied in the template (a bootstrapped ``start``);
    ``observe`` is called on the migration connection before the first step (with None) and
    after each revision's upgrade (with its id).
    Raises :class:`MigrationFailed` when a step fails; the database is dropped then.
    """
    revisions, label = resolve_target(history, target)
    steps = [r for r in history.ordered(history.closure(revisions)) if r not in skip]
    db = server.create_database(template=template)
    finished: list[bool] = []

    def plan(conn: Connection) -> Iterator[Step]:
        if observe is not None:
            observe(conn, None)
        for rev in steps:
            yield Step(rev, "upgrade")
            if observe is not None:
                observe(conn, rev)
        finished.append(True)

    try:
        paths = {r: i.path for r, i in history.revisions.items()}
        outcome = _run(project, config_factory, db, plan, paths)
        if outcome.error is not None:
            step = outcome.error.step
            what = (
                f"upgrade of {history.describe(step.revision)} failed"
                if step is not None
                else outcome.error.headline().rstrip(":")
            )
            raise MigrationFailed(f"migrating to {label} failed: {what}", outcome.error)
        if not finished:
            raise MigrationFailed(
                f"migrating to {label} did not run: env.py never called run_migrations()"
            )
        version_table = outcome.version_table.partition(".")[2] or "alembic_version"
        snapshot = snapshot_database(db.url, exclude_tables=(version_table,))
    except BaseException:
        server.drop_database(db)
        raise
    return Migrated(db, snapshot, revisions, label, version_table, outcome.version_table)


def snapshot_database(url: str, *, exclude_tables: tuple[str, ...] = ()) -> Snapshot:
    """The schema of the database at ``url`` (``alembic_version`` always left out)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    # The catalog query is large; JIT-compiling it costs seconds and saves nothing.
    engine = create_engine(url, poolclass=NullPool, connect_args={"options": "-c jit=off"})
    try:
        with engine.connect() as conn:
            return take_snapshot(conn, exclude_tables=(*DEFAULT_EXCLUDED_TABLES, *exclude_tables))
    finally:
        engine.dispose()


def _run(
    project: AlembicProject,
    config_factory: Callable[[str], Config],
    db: Any,
    plan: Callable[[Connection], Iterator[Step]],
    paths: dict[str, str],
) -> PassOutcome:
    """One env.py pass on ``db``, as the project runs (its driver, its ``env_context``)."""
    return project.run_on(
        config_factory, plan, database=db.name, url=db.url, paths=paths, commit=True
    )
