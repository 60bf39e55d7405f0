"""``schemaguard_migrator``: a fresh database stepped through the revisions by a test, for
data-migration tests (rows put in before a revision, read back after it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_schemaguard.databases.migrations import MigrationError, ProjectMigrations
from pytest_schemaguard.errors import SchemaguardError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from pytest_schemaguard.server import Database


class MigratorError(SchemaguardError):
    """A move the migrator cannot make (already at head, at base, a revision behind)."""


class Migrator:
    """Moves one fresh database through the project's revisions with its own env.py.

    Every move runs env.py once, as ``alembic upgrade``/``downgrade`` would. What is pending on
    :attr:`connection` is committed before each move, so the migration sees the rows a test
    put in (and its locks are not in the migration's way).
    """

    def __init__(
        self, migrations: ProjectMigrations, database: Database, applied: frozenset[str]
    ) -> None:
        self.migrations = migrations
        self.history = migrations.history
        self.database = database
        self._applied = applied
        self._connection: Connection | None = None

    # ------------------------------------------------------------------ where it is
    @property
    def heads(self) -> tuple[str, ...]:
        """The revisions the database is at (one, unless branches are applied)."""
        applied = self._applied
        required = {p for r in applied for p in self.history.requirements(r)}
        return tuple(r for r in self.history.ordered(applied) if r not in required)

    @property
    def current(self) -> str | None:
        """The revision the database is at; None at base."""
        heads = self.heads
        if len(heads) > 1:
            raise MigratorError(
                f"the database is at {len(heads)} heads ({', '.join(heads)}): use .heads"
            )
        return heads[0] if heads else None

    @property
    def connection(self) -> Connection:
        """A SQLAlchemy connection to the database (open for the test; commit what you want
        a migration to see, or let the next move commit it)."""
        if self._connection is None:
            self._connection = self.database.engine.connect()
        return self._connection

    # ------------------------------------------------------------------ moves
    def migrate_up_to(self, revision: str) -> None:
        """Upgrade to ``revision`` (an id, a unique prefix, or ``head``)."""
        target = self.migrations.target(revision)
        if target == self._applied:
            return
        if target <= self._applied:
            raise MigratorError(
                f"cannot upgrade to {revision!r}: the database is at {self._where()}, "
                f"past it; use migrate_down_to({revision!r})"
            )
        self._move(self._applied | target, f"upgrading to {revision}")

    def migrate_down_to(self, revision: str) -> None:
        """Downgrade to ``revision`` (an id, a unique prefix, or ``base``)."""
        target = self.migrations.target(revision)
        if not target <= self._applied:
            raise MigratorError(
                f"cannot downgrade to {revision!r}: the database is at {self._where()}, "
                f"before it; use migrate_up_to({revision!r})"
            )
        self._move(target, f"downgrading to {revision}")

    def migrate_up_one(self) -> str:
        """Upgrade by one revision (the next in the history's order); returns it."""
        for rev in self.history.order:
            if rev not in self._applied and set(self.history.requirements(rev)) <= self._applied:
                self._move(self._applied | {rev}, f"upgrading to {rev}")
                return rev
        raise MigratorError(f"cannot upgrade by one: the database is at {self._where()}")

    def migrate_down_one(self) -> str:
        """Downgrade the newest applied revision; returns it."""
        heads = [r for r in self.heads if r not in self.migrations.floor]
        if not heads:
            raise MigratorError(f"cannot downgrade by one: the database is at {self._where()}")
        rev = heads[-1]
        self._move(self._applied - {rev}, f"downgrading {rev}")
        return rev

    def _move(self, target: frozenset[str], what: str) -> None:
        if self._connection is not None and self._connection.in_transaction():
            self._connection.commit()
        try:
            self._applied = self.migrations.migrate(self.database, self._applied, target, what=what)
        except MigrationError:
            # env.py may have committed the steps before the failing one (a transaction per
            # migration): where the database is now is what its version table says
            self._applied = self.migrations.applied(self.database)
            raise

    def _where(self) -> str:
        heads = self.heads
        return ", ".join(self.history.describe(h) for h in heads) if heads else "base"

    # ------------------------------------------------------------------ data
    def insert_into(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (dicts of column values) into ``table`` (``schema.table`` allowed)
        and commit them."""
        from sqlalchemy import MetaData, Table, insert

        schema, _, name = table.rpartition(".")
        conn = self.connection
        reflected = Table(name, MetaData(), schema=schema or None, autoload_with=conn)
        rows = [dict(row) for row in rows]
        if rows:
            conn.execute(insert(reflected), rows)
        conn.commit()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
