"""The project's migrations run on scratch databases, as the migration checks run them: its
own ``env.py`` on its own driver (:meth:`AlembicProject.run_on`), one ``env.py`` run per
move, each revision a step of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.alembic_driver import AlembicProject, Step
from pytest_schemaguard.migrations.history import History

if TYPE_CHECKING:
    from alembic.config import Config

    from pytest_schemaguard.config import Settings
    from pytest_schemaguard.server import Database


class MigrationError(SchemaguardError):
    """A revision failed while a database was migrated for a test."""


class UnknownRevisionError(SchemaguardError):
    """A revision named by a test is not in the history."""


class ProjectMigrations:
    """One Alembic project's revisions, and the moves between sets of applied revisions."""

    def __init__(
        self,
        project: AlembicProject,
        history: History,
        settings: Settings,
        make_config: Callable[[str], Config] | None = None,
    ) -> None:
        self.project = project
        self.history = history
        self.settings = settings
        self.make_config: Callable[[str], Config] = make_config or project.make_config
        self.floor: frozenset[str] = frozenset(
            history.closure([settings.start])
            if settings.start is not None and settings.start in history
            else ()
        )
        """What a fresh database has applied: nothing, or ``start`` after the bootstrap."""
        self.version_table = "public.alembic_version"
        """The version table env.py configured (schema-qualified; known after a run)."""

    # ------------------------------------------------------------------ names
    @property
    def head(self) -> frozenset[str]:
        return frozenset(self.history.closure(self.history.heads))

    def resolve(self, ref: str) -> str | None:
        """The revision id ``ref`` names (an id, a unique prefix; None for ``base``)."""
        if ref == "base":
            return None
        if ref in ("head", "heads"):
            heads = self.history.heads
            if len(heads) == 1:
                return heads[0]
            raise UnknownRevisionError(
                f"{ref!r} is ambiguous: the history has {len(heads)} heads "
                f"({', '.join(self.history.short(h) for h in heads)}); name one of them"
            )
        found = self.history.resolve(ref)
        if found is not None:
            return found
        matches = sorted(r for r in self.history.revisions if r.startswith(ref))
        known = ", ".join(self.history.describe(r) for r in self.history.order)
        if len(matches) > 1:
            raise UnknownRevisionError(
                f"revision {ref!r} is ambiguous: it starts {', '.join(matches)}; give more "
                "characters of the id"
            )
        raise UnknownRevisionError(
            f"unknown revision {ref!r} in {self.project.display_path}: not a revision id, a "
            f"unique prefix of one, 'head' or 'base' (the revisions: {known or 'none'})"
        )

    def target(self, ref: str) -> frozenset[str]:
        """The revisions applied at ``ref`` (``head`` on a history with several heads: all)."""
        if ref in ("head", "heads"):
            return self.head
        rev = self.resolve(ref)
        if rev is None:
            return self.floor
        return frozenset(self.history.closure([rev])) | self.floor

    # ------------------------------------------------------------------ running
    def prepare(self, db: Database) -> frozenset[str]:
        """Make a fresh (empty) database the start of every move: the ``bootstrap`` hook's
        schema, stamped at ``start`` when that is set. Returns what it has applied."""
        if not self.settings.bootstrap:
            return frozenset()
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from pytest_schemaguard.migrations.runner import load_bootstrap

        target = load_bootstrap(self.settings)
        engine = create_engine(db.url, poolclass=NullPool)
        failure = None
        try:
            with engine.begin() as conn:
                target(conn)
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            engine.dispose()
        if failure is not None:
            raise MigrationError(f"the bootstrap hook {self.settings.bootstrap} failed: {failure}")
        if self.settings.start is not None:
            self._run(db, [], stamp=self.settings.start, what="stamping the bootstrap at start")
        return self.floor

    def steps(self, applied: Iterable[str], target: Iterable[str]) -> list[Step]:
        """The steps from ``applied`` to ``target``: downgrades newest first, then upgrades."""
        have, want = set(applied), set(target)
        down = [Step(r, "downgrade") for r in reversed(self.history.ordered(have - want))]
        up = [Step(r, "upgrade") for r in self.history.ordered(want - have)]
        return down + up

    def migrate(
        self, db: Database, applied: Iterable[str], target: Iterable[str], *, what: str
    ) -> frozenset[str]:
        """Move ``db`` from ``applied`` to ``target`` in one env.py run; returns ``target``."""
        steps = self.steps(applied, target)
        if steps:
            self._run(db, steps, what=what)
        return frozenset(target)

    def applied(self, db: Database) -> frozenset[str]:
        """What ``db``'s version table says is applied (with every ancestor)."""
        import psycopg
        from psycopg import sql

        schema, _, table = self.version_table.rpartition(".")
        query = sql.SQL("select version_num from {}").format(sql.Identifier(schema, table))
        try:
            with psycopg.connect(db.dsn, autocommit=True) as conn:
                heads = [str(row[0]) for row in conn.execute(query).fetchall()]
        except psycopg.errors.UndefinedTable:
            return self.floor
        known = [h for h in heads if h in self.history]
        return frozenset(self.history.closure(known)) | self.floor

    def _run(self, db: Database, steps: list[Step], *, what: str, stamp: str | None = None) -> None:
        paths = {r: i.path for r, i in self.history.revisions.items()}

        def plan(conn: Any) -> Iterator[Step]:
            return iter(steps)

        outcome = self.project.run_on(
            self.make_config,
            plan,
            database=db.name,
            url=db.url,
            paths=paths,
            stamp=stamp,
            commit=True,
        )
        self.version_table = outcome.version_table
        if outcome.error is not None:
            error = outcome.error
            step = error.step
            where = f": {error.headline().rstrip(':')}"
            if step is not None:
                where = f": {step.direction} of {self.history.describe(step.revision)} failed"
            raise MigrationError(
                f"{what}{where}\n" + "\n".join("    " + line for line in error.render())
            )
