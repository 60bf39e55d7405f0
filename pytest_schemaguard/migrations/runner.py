"""The migration checks: plan what the selected checks need, migrate, and keep the results.

A :class:`MigrationRunner` serves one pytest process.  Asked for the result of one check, it
plans a *batch* (the checks the caller expects to need soon: all selected ones in a plain run,
one per item under xdist), and runs as few ``env.py`` passes as it can:

* revisions are applied in topological order, only those the batch needs (a lone
  ``roundtrip[X]`` upgrades X's ancestors without checks, then up/down/up X);
* every pass runs in a freshly cloned database; a failed step or a round trip that leaves a
  different schema ends the pass, the database is dropped, and the next pass replays the
  revisions applied so far in a new clone, so no failure leaks into the next check;
* the schema is snapshotted on the migration connection between steps, and compared with the
  snapshot core.

This module does not import pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from pytest_schemaguard.config import Settings
from pytest_schemaguard.dbapi import row_tuples
from pytest_schemaguard.errors import SchemaguardError, stopped_by
from pytest_schemaguard.hooks import HookError, import_hook
from pytest_schemaguard.migrations.alembic_driver import (
    AlembicProject,
    PassOutcome,
    Step,
    StepError,
    dependents_fix,
    released_process_state,
)
from pytest_schemaguard.migrations.fixes import downgrade_fix
from pytest_schemaguard.migrations.history import ALL_REVISIONS, History
from pytest_schemaguard.migrations.stepper import Stepper
from pytest_schemaguard.report.findings import Finding, finding_of
from pytest_schemaguard.snapshot.compare import KIND_WORDS, Difference, compare
from pytest_schemaguard.snapshot.introspect import (
    DEFAULT_EXCLUDED_TABLES,
    Reading,
    ddl_log,
    read_schema,
    take_snapshot,
)
from pytest_schemaguard.snapshot.model import Snapshot

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

__all__ = [
    "CheckId",
    "CheckResult",
    "DatabaseLike",
    "MigrationRunner",
    "ServerLike",
    "StepObserver",
    "check_setup",
    "load_bootstrap",
]

CheckKind = Literal["history", "upgrade", "roundtrip", "cycle"]


class DatabaseLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...


class ServerLike(Protocol):
    def create_database(self, template: str | None = None) -> Any: ...
    def drop_database(self, db: Any) -> None: ...


class StepObserver(Protocol):
    """Watches each revision's first upgrade in the migration pass (on its parent's schema,
    on the connection env.py migrates with): registered with :meth:`MigrationRunner.observe`.

    ``before_upgrade`` runs just before the step, ``after_upgrade`` just after it (inside the
    transaction env.py began, when it began one), ``upgrade_failed`` instead of
    ``after_upgrade`` when the step failed (the connection is gone by then). The replay of
    revisions already checked and the upgrades of round trips and the cycle are not shown.
    """

    def before_upgrade(self, conn: Connection, rev: str) -> None: ...

    def after_upgrade(self, conn: Connection, rev: str) -> None: ...

    def upgrade_failed(self, rev: str, error: StepError) -> None: ...


@dataclass(frozen=True, order=True)
class CheckId:
    """One migration check: ``history``, ``cycle``, or ``upgrade``/``roundtrip`` of a revision."""

    kind: CheckKind
    revision: str | None = None


@dataclass
class CheckResult:
    """The outcome of one check, ready to be reported."""

    outcome: Literal["passed", "failed", "skipped"]
    title: str = ""
    """The header: what was checked and where (revision file)."""
    lines: list[str] = field(default_factory=list)
    """The details of a failure (differences, SQL, server error), or the skip reason."""
    warnings: list[str] = field(default_factory=list)
    """Differences only in column order, when ``column_order = "warn"``."""
    notes: list[str] = field(default_factory=list)
    """What a reader of a passing check should know (shown as a warning), e.g. that it ran
    after a revision that fails on its own was reached in one run from base."""
    location: tuple[str, int] | None = None
    """Where the fix of a failure goes (file, 1-based line) when that is not the item's own
    location: the ``downgrade()`` of a revision that left something behind."""
    cause: str | None = None
    """For a failure that many checks share (env.py cannot run): the root cause in one line.
    The first check that fails with it shows the whole message; the others are skipped as
    blocked by it."""
    findings: list[Finding] = field(default_factory=list)
    """The differences behind a failure as structured data (for the JSON report); empty for
    failures that are not schema differences."""

    @property
    def reason(self) -> str:
        return self.lines[0] if self.lines else ""


# ------------------------------------------------------------------------------ comparing


@dataclass
class Differences:
    errors: list[str] = field(default_factory=list)
    column_order: list[str] = field(default_factory=list)
    found: dict[str, Difference] = field(default_factory=dict)
    """The difference behind each sentence (for the fix a sentence is followed by)."""
    labels: tuple[str, str] = ("", "")
    """How the two sides were named (expected, actual)."""
    expected: Snapshot | None = None
    """The expected side (for a fix that restores an object as it was there)."""

    def __bool__(self) -> bool:
        return bool(self.errors or self.column_order)

    def findings(self, sentences: Iterable[str]) -> list[Finding]:
        """The structured findings behind ``sentences`` (those of this comparison)."""
        return [
            finding_of(self.found[text], *self.labels, message=text)
            for text in sentences
            if text in self.found
        ]


def compare_snapshots(
    expected: Snapshot,
    actual: Snapshot,
    *,
    action: str,
    expected_name: str,
    actual_name: str,
    extra: str = "left",
    missing: str = "dropped",
) -> Differences:
    """The differences of ``actual`` against ``expected``, as sentences naming ``action``.

    An object only in ``actual`` reads ``<action> <extra> <object>`` (``downgrade of 3f2a9c
    (add status) left type public.order_status``), one only in ``expected`` reads ``<action>
    <missing> <object>``, a changed one ``<action> changed <object>: <what>``.
    """
    out = Differences(labels=(expected_name, actual_name), expected=expected)
    if expected == actual:
        return out
    for diff in compare(expected, actual, left_label=expected_name, right_label=actual_name):
        word = KIND_WORDS.get(diff.kind, diff.kind)
        if diff.category == "only_right":
            text = f"{action} {extra} {word} {diff.name}"
        elif diff.category == "only_left":
            text = f"{action} {missing} {word} {diff.name}"
        else:
            text = f"{action} changed {diff.message}"
        out.found.setdefault(text, diff)
        if diff.category == "column_order":
            out.column_order.append(text)
        else:
            out.errors.append(text)
    return out


#: A step's error for a relation that does not exist (psycopg, psycopg2, pg8000; asyncpg).
_MISSING_TABLE = re.compile(r'UndefinedTable(?:Error)?: relation "([^"]+)" does not exist')
_EXISTING_TYPE = re.compile(r'DuplicateObject(?:Error)?: type "([^"]+)" already exists')
_MISSING_TYPE = re.compile(r'UndefinedObject(?:Error)?: type "([^"]+)" does not exist')

# ------------------------------------------------------------------------------ the session

#: What a migration may leave in its session for the next one: temporary tables (views,
#: sequences: the relations of the session's temporary schema that depend on it, found
#: through an index, where counting its rows of ``pg_class`` scans the whole catalog), and
#: settings (``SET``, ``set_config``; ``SHOW ALL`` gives every setting the role may see, at a
#: fraction of the cost of ``pg_settings``, which also works out each setting's bounds, units
#: and descriptions).
_SESSION_STATE = (
    "SELECT count(*) FROM pg_catalog.pg_depend "
    "WHERE refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass "
    "AND refobjid = pg_catalog.pg_my_temp_schema() "
    "AND classid = 'pg_catalog.pg_class'::pg_catalog.regclass",
    "SHOW ALL",
)


def _same_error(first: StepError | None, second: StepError) -> bool:
    """Whether two failures of a step are one: the same error, statement and place."""
    return first is not None and (first.error, first.statement, first.location, first.fix) == (
        second.error,
        second.statement,
        second.location,
        second.fix,
    )


def left_behind(before: tuple[Any, ...], after: tuple[Any, ...]) -> bool:
    """Whether the session state ``after`` (:func:`_session_state`) shows something a
    migration left behind since ``before``: another number of temporary tables, or a setting
    of ``before`` changed or gone (``SET ROLE`` hides some).  A setting that appears only in
    ``after`` does not count: a library loaded on first use (plpgsql at the first ``DO``
    block, say) adds its settings at their defaults, and a new session loads it again."""
    if before == after:
        return False
    if before[0] != after[0]:
        return True
    now = {row[0]: row[1] for row in after[1]}
    return any(row[0] not in now or now[row[0]] != row[1] for row in before[1])


def _session_state(conn: Connection) -> tuple[Any, ...]:
    """What a migration may leave in its session for the next one (:data:`_SESSION_STATE`):
    temporary tables and settings.  A user upgrading from the previous release has none.
    The same value as :attr:`Reading.also` of a read with ``session``."""
    return tuple(row_tuples(conn.exec_driver_sql(statement).all()) for statement in _SESSION_STATE)


# ------------------------------------------------------------------------------ the layout


@dataclass(frozen=True)
class Layout:
    """Which checks a history has under the settings (pure; used at collection time)."""

    history: History
    irreversible: frozenset[str]
    start: str | None
    pre_start: frozenset[str]
    """``start`` and its ancestors: built by the bootstrap hook, never migrated."""
    floor: frozenset[str]
    """Irreversible revisions, revisions without a ``downgrade()``, and their ancestors: the
    cycle never downgrades them."""
    no_downgrade: frozenset[str] = frozenset()
    """Revisions with no ``downgrade()`` function (``history`` reports them; their
    ``roundtrip`` is skipped)."""

    @classmethod
    def build(cls, history: History, settings: Settings) -> Layout:
        if ALL_REVISIONS in settings.irreversible:  # migrations that only go forward
            irreversible = frozenset(history.revisions)
        else:
            resolved = {history.resolve(r) for r in settings.irreversible}
            irreversible = frozenset(r for r in resolved if r is not None)
        start = history.resolve(settings.start) if settings.start else None
        pre_start = frozenset(history.closure([start]) if start else ())
        no_downgrade = frozenset(
            r
            for r, info in history.revisions.items()
            if info.downgrade == "missing" and r not in irreversible and r not in pre_start
        )
        floor = frozenset(history.closure(irreversible | no_downgrade) - pre_start)
        return cls(history, irreversible, start, pre_start, floor, no_downgrade)

    def revisions(self) -> list[str]:
        """Revisions with an ``upgrade`` check, in run order (the floor first)."""
        runnable = [r for r in self.history.order if r not in self.pre_start]
        floor = [r for r in runnable if r in self.floor]
        return floor + [r for r in runnable if r not in self.floor]

    def checks(self) -> list[CheckId]:
        """Every check of the project, in the order they are best run."""
        out = [CheckId("history")]
        if not self.history.sound or not self.history.revisions:
            return out  # nothing to migrate (an empty history needs heads = 0)
        revisions = self.revisions()
        for rev in revisions:
            out.append(CheckId("upgrade", rev))
            if rev not in self.irreversible:
                out.append(CheckId("roundtrip", rev))
        if any(rev not in self.floor for rev in revisions):
            # a cycle with no revision to go down through could not fail: none then
            out.append(CheckId("cycle"))
        return out


def check_setup(project: AlembicProject, history: History, settings: Settings) -> None:
    """What makes the migration checks impossible to run, as one :class:`SchemaguardError`
    (a usage error at collection): no revisions found, ``start`` without ``bootstrap``, a
    ``bootstrap`` hook that cannot be imported."""
    if not history.revisions and settings.heads != 0:
        script = project.script
        try:
            location = Path(script.dir).resolve().relative_to(project.rootdir.resolve())
            shown = location.as_posix() or "."
        except ValueError:
            shown = str(script.dir)
        versions = ", ".join(_display(project, v) for v in _version_locations(script))
        raise SchemaguardError(
            f"{project.display_path}: script_location {shown} has no revisions ({versions} "
            "holds no revision files); point script_location at the directory holding env.py "
            "and versions/, or set heads = 0 if the history is meant to be empty"
        )
    if settings.start is not None and not settings.bootstrap:
        raise SchemaguardError(
            f"{settings.describe('start')} = {settings.start!r} needs a bootstrap hook that "
            "builds the schema at that revision: set bootstrap = 'package.module:function'"
        )
    matches = history.matching(settings.start) if settings.start is not None else []
    if settings.start is not None and history.revisions and len(matches) != 1:
        # otherwise every revision would run from base on the schema the hook builds at start
        what = (
            f"names {len(matches)} revisions ({', '.join(map(history.short, matches))})"
            if len(matches) > 1
            else f"is no revision of {project.display_path}"
        )
        raise SchemaguardError(
            f"{settings.describe('start')} = {settings.start!r} {what}: set it to the id (or a "
            "unique prefix) of the revision whose schema the bootstrap hook builds (`alembic "
            "history` lists them)"
        )
    if settings.bootstrap:
        load_bootstrap(settings)


class BootstrapError(SchemaguardError):
    """The ``bootstrap`` hook failed on the template database (or stamping its schema at
    ``start`` did): no check that needs a database can run.  ``lines`` say what happened (the
    project's line that raised and the error), ``cause`` in one line, for the checks it
    blocks."""

    def __init__(self, lines: list[str], cause: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.cause = cause


def load_bootstrap(settings: Settings) -> Callable[[Any], Any]:
    """The ``bootstrap`` hook, imported relative to the configuration's directory."""
    assert settings.bootstrap is not None
    where = settings.describe("bootstrap")
    target = import_hook(settings.bootstrap, settings.root, where=where)
    if not callable(target):
        raise HookError(
            f"{where} = {settings.bootstrap!r} is a {type(target).__name__}, not a function "
            "taking a SQLAlchemy connection"
        )
    return cast("Callable[[Any], Any]", target)


def _version_locations(script: Any) -> list[str]:
    locations = getattr(script, "version_locations", None)
    if locations:
        return [str(v) for v in locations]
    return [str(Path(script.dir) / "versions")]


def _display(project: AlembicProject, path: str) -> str:
    try:
        return Path(path).resolve().relative_to(project.rootdir.resolve()).as_posix()
    except ValueError:
        return path


# ------------------------------------------------------------------------------ the runner


@dataclass
class _State:
    """The current scratch database of the runner and what has been applied to it."""

    db: Any
    applied: list[str] = field(default_factory=list)
    clean: bool = True


class MigrationRunner:
    """Runs the migration checks of one Alembic project against scratch databases."""

    def __init__(
        self,
        project: AlembicProject,
        history: History,
        settings: Settings,
        server: ServerLike,
        config_factory: Callable[[str], Config],
    ) -> None:
        self.project = project
        self.history = history
        self.settings = settings
        self.server = server
        # the factory (schemaguard_alembic_config) gets URLs in the project's driver
        self.config_factory: Callable[[str], Config] = lambda url: config_factory(
            project.driver.url(url)
        )
        self.results: dict[CheckId, CheckResult] = {}
        self.failed_upgrades: dict[str, StepError] = {}
        """Revisions that cannot be reached: their upgrade failed on its own and in one run
        from base."""
        self.alone_errors: dict[str, StepError] = {}
        """Why a revision's upgrade failed as its own step (on its parent's schema)."""
        self.session_leaks: list[str] = []
        """Revisions after which env.py's session was not as it began (a temporary table or a
        setting left behind): the pass ended there, and the next revision ran in a new one."""
        self.one_run: set[str] = set()
        """Revisions whose upgrade failed on its own but that one run from base reached (as
        ``alembic upgrade R`` on an empty database does): the checks after them run from
        there."""
        self._retrying: set[str] = set()
        """Revisions whose next upgrade is the attempt in one run from base (a new clone,
        the revisions before it replayed in the same env.py run)."""
        self._partial: dict[str, tuple[Reading, Reading]] = {}
        """Round trips interrupted after the first upgrade (the snapshots before and after
        it), to be finished at the start of the next pass."""
        self._split = False
        self.stepwise = False
        """Do each check's share of the work when its result is asked for (one pass,
        suspended between checks in a worker thread), instead of the whole batch at once."""
        self._stepper = Stepper()
        self._stepper_todo: set[CheckId] = set()
        self.skip_ahead = False
        """Leave out the round trips of the revisions before the one whose check is awaited
        (an xdist worker: the items in between went to other workers, which check them)."""
        self._left_out: set[CheckId] = set()
        """Round trips a pass left out (:attr:`skip_ahead`): not run, nor due, in this pass."""
        self.selected: set[CheckId] = set()
        """Checks selected in this session (a skip reason may point at them)."""
        self.pass_count = 0
        self.step_count = 0
        self.snapshot_count = 0
        self.snapshot_reused = 0
        """Snapshots not built: the catalog documents were those of the snapshot compared with."""
        self._state: _State | None = None
        self._template: Any = None
        self._template_ready = False
        self._template_error: BootstrapError | None = None
        self._down_errors: dict[str, StepError] = {}
        """Why a revision's downgrade failed in its round trip."""
        self._stopped: tuple[list[str], str] | None = None
        """What stopped every check when a pass raised instead of failing a check (see
        :meth:`_run`): its lines and its one-line cause."""
        self._base: Snapshot | None = None  # the schema before any revision (after bootstrap)
        self._floor: Snapshot | None = None  # ... after the revisions the cycle never downgrades
        self._version_table = "alembic_version"
        self._ever_applied: set[str] = set()
        self.observers: list[StepObserver] = []
        self.head_snapshot: Snapshot | None = None
        """The schema at head reached by one straight upgrade from the floor (set by a passing
        ``cycle``), for checks that only need to read the schema at head."""

        layout = Layout.build(history, settings)
        self.layout = layout
        self.irreversible = layout.irreversible
        self.start = layout.start
        self.pre_start = layout.pre_start
        self.floor = layout.floor

    def revisions(self) -> list[str]:
        return self.layout.revisions()

    def observe(self, observer: StepObserver) -> None:
        """Show each revision's first upgrade to ``observer`` from now on."""
        self.observers.append(observer)

    def title(self, check: CheckId) -> str:
        h = self.history
        if check.kind == "history":
            return f"history of {self.project.display_path}"
        if check.kind == "cycle":
            return f"cycle base -> head -> base -> head of {self.project.display_path}"
        assert check.revision is not None
        info = h.info(check.revision)
        return f"{check.kind} of {h.describe(check.revision)} ({info.path})"

    # ------------------------------------------------------------------ results
    def result(self, check: CheckId, batch: Iterable[CheckId] = ()) -> CheckResult:
        """The result of ``check``, running (with it) the checks in ``batch`` not yet known."""
        if not self._settled(check):

            def todo() -> list[CheckId]:
                return [check, *(c for c in batch if c not in self.results and c != check)]

            if self.stepwise:
                self._run_stepwise(check, todo)
            else:
                self._run(todo())
        result = self.results[check]
        for note in self._one_run_notes(check):
            if result.outcome == "failed" and f"note: {note}" not in result.lines:
                result.lines.append(f"note: {note}")
            elif result.outcome == "passed" and note not in result.notes:
                result.notes.append(note)
        return result

    def _settled(self, check: CheckId) -> bool:
        """Whether ``check``'s result is final.  A revision whose upgrade failed on its own is
        tried next in one run from base (:meth:`_record_error`); its ``upgrade`` result is
        final once that try has said whether one run works, which its report says too."""
        if check not in self.results:
            return False
        return not (check.kind == "upgrade" and check.revision in self._retrying)

    def _one_run_notes(self, check: CheckId) -> list[str]:
        """For a check that ran after a revision reached in one run from base: say so."""
        if not self.one_run:
            return []
        if check.kind == "cycle":
            behind = self.history.ordered(self.one_run)
        elif check.kind in ("upgrade", "roundtrip") and check.revision is not None:
            behind = self.history.ancestors_among(check.revision, self.one_run)
        else:
            return []
        return [
            f"{self.history.describe(r)} fails when upgraded on its own (see "
            f"upgrade[{self.history.label(r)}]); this check ran after upgrading from base to "
            "it in one run"
            for r in behind
        ]

    def _run_stepwise(self, check: CheckId, checks: Callable[[], list[CheckId]]) -> None:
        """Advance the suspended pass until ``check``'s result is known (starting one for
        ``checks()`` when none is under way)."""
        stepper = self._stepper
        if stepper.running and (check not in self._stepper_todo or check in self._left_out):
            stepper.finish()  # the pass under way does not lead there: let it end first
        if self._settled(check) or (check in self.results and not stepper.running):
            return
        if not stepper.running:
            todo = checks()
            self._stepper_todo = set(todo)
            stepper.start(lambda: self._run(todo))
        stepper.wait_for(lambda: self._settled(check), key=check)
        if check not in self.results:  # pragma: no cover - the worker always settles it
            self._run([check])

    def settle(self) -> None:
        """Finish the work under way, so that nothing of it is suspended while other code
        runs (the next pytest item is not a migration check)."""
        if self._stepper.running:
            self._stepper.finish()

    def _leave_out(self, rev: str) -> bool:
        """With :attr:`skip_ahead`, whether the pass may upgrade ``rev`` without its round
        trip: the check awaited (once one is) is an ``upgrade`` or ``roundtrip`` of a later
        revision, so this process's items have gone past ``rev``'s."""
        if not self.skip_ahead or not self._stepper.in_worker():
            return False
        self._gate()  # until an item waits for something: the awaited check is then known
        awaited = self._stepper.awaited_key
        return (
            isinstance(awaited, CheckId)
            and awaited.kind in ("upgrade", "roundtrip")
            and awaited.revision is not None
            and self.history.comes_after(awaited.revision, rev)
        )

    def _gate(self) -> None:
        """Before each migration step: in a stepwise run, wait here until a check needs it."""
        if self._stepper.in_worker():
            self._stepper.gate(released_process_state)

    def close(self) -> None:
        """Drop every scratch database the runner still holds."""
        if self._stepper.running:
            self._stepper.abandon()  # the suspended pass is rolled back
        if self._state is not None:
            self._drop(self._state.db)
            self._state = None
        if self._template is not None:
            self._drop(self._template)
            self._template = None

    # ------------------------------------------------------------------ planning
    def _run(self, todo: list[CheckId]) -> None:
        """Run the checks of ``todo`` not yet known.  An exception that ends a pass instead of
        failing a check (a :class:`SchemaguardError`, or this plugin's own code raising: a bug,
        or a schema it cannot read) fails them all with one cause: the first check reported
        shows the whole message, the others are skipped as blocked by it, and no later batch
        starts a pass again only to meet it once more."""
        if self._stopped is not None:
            self._fail(todo, *self._stopped)
            return
        try:
            self._run_batch(todo)
        except Exception as exc:
            self._stopped = stopped_by(exc, "migration checks")
            self._partial.clear()
            self._discard()
            self._fail(todo, *self._stopped)

    def _run_batch(self, todo: list[CheckId]) -> None:
        self._left_out.clear()
        for check in todo:
            if check.kind == "history":
                self.results[check] = self._history_result()
        todo = [c for c in todo if c not in self.results]
        if not todo:
            return
        if not self.history.sound:
            first = self.history.unsound_reason
            for check in todo:
                self._blocked(check, f"needs a sound history ({first})", CheckId("history"))
            return

        for check in todo:
            if check.kind == "roundtrip" and check.revision in self.layout.no_downgrade:
                self._no_downgrade(check)
        ups = {c.revision for c in todo if c.kind == "upgrade" and c.revision}
        trips = {
            c.revision
            for c in todo
            if c.kind == "roundtrip"
            and c.revision
            and c.revision not in self.irreversible
            and c not in self.results
        }
        cycle = CheckId("cycle") in todo
        runnable = self.revisions()
        needed = set(runnable) if cycle else self.history.closure(ups | trips) - self.pre_start
        order = [r for r in runnable if r in needed]

        # upgrades already seen (applied as ancestors in an earlier batch)
        for rev in list(ups):
            self._settle_upgrade(rev)
        trips = {r for r in trips if CheckId("roundtrip", r) not in self.results}

        state = self._state
        if (
            state is None
            or not state.clean
            or any(r in state.applied for r in trips)
            or (cycle and bool(self.floor) and self._floor is None)
        ):
            try:
                self._new_state()
            except BootstrapError as exc:
                self._fail(todo, exc.lines, exc.cause)
                return
        state = self._state
        assert state is not None
        # The revisions this batch has applied (or found applied): what a fresh clone replays.
        progress: list[str] = list(state.applied)
        while True:
            if cycle and CheckId("cycle") not in self.results and self.failed_upgrades:
                rev = self.history.ordered(self.failed_upgrades)[0]
                self._blocked(CheckId("cycle"), self._needs(rev), CheckId("upgrade", rev))
            cycle_pending = cycle and CheckId("cycle") not in self.results
            pending = [
                r for r in order if r not in progress and not self._blocked_by_failed_upgrade(r)
            ]
            if not pending and not cycle_pending and not self._partial:
                break
            replay = [r for r in progress if r not in state.applied]
            self._split = False
            outcome = self._pass(state, replay, pending, trips, cycle_pending, progress)
            if outcome.error is None and state.clean:
                if self._split:
                    continue  # the next revision starts in a new session, on this database
                break
            if outcome.error is not None and outcome.error.step is None:
                # env.py itself failed: nothing can run
                lines = [outcome.error.headline(), *outcome.error.render()]
                self._fail(todo, lines, outcome.error.cause())
                self._partial.clear()
                self._discard()
                return
            # a failure: forget this database, replay what succeeded in a fresh clone
            trips = {r for r in trips if CheckId("roundtrip", r) not in self.results}
            progress[:] = [r for r in progress if not self._blocked_by_failed_upgrade(r)]
            self._new_state()
            state = self._state
            assert state is not None
        for check in todo:
            if check not in self.results and check.kind == "upgrade" and check.revision:
                self._settle_upgrade(check.revision)
        for check in todo:
            if check not in self.results and check not in self._left_out:
                rev = check.revision or ""
                blocker = self._failed_ancestor(rev) if rev else None
                if blocker is not None:
                    self._blocked(check, self._needs(blocker), CheckId("upgrade", blocker))
                else:  # pragma: no cover - a planning gap would be a bug
                    self.results[check] = CheckResult(
                        "failed", self.title(check), ["this check was not run (internal error)"]
                    )

    def _fail(self, todo: list[CheckId], lines: list[str], cause: str) -> None:
        """Every check of ``todo`` not yet known fails with what stopped them all."""
        for check in todo:
            if check not in self.results:
                self.results[check] = CheckResult("failed", self.title(check), lines, cause=cause)

    def _settle_upgrade(self, rev: str) -> None:
        check = CheckId("upgrade", rev)
        if check in self.results:
            return
        if rev in self.failed_upgrades:
            self.results[check] = CheckResult(
                "failed",
                self.title(check),
                [
                    f"upgrade of {self.history.describe(rev)} failed",
                    *self.failed_upgrades[rev].render(),
                ],
            )
            return
        blocker = self._failed_ancestor(rev)
        if blocker is not None:
            self._blocked(check, self._needs(blocker), CheckId("upgrade", blocker))
        elif rev in self._ever_applied:
            self.results[check] = CheckResult("passed", self.title(check))

    def _needs(self, rev: str) -> str:
        return f"needs {self.history.label(rev)}, whose upgrade failed"

    def _failed_ancestor(self, rev: str) -> str | None:
        failed = self.history.ancestors_among(rev, self.failed_upgrades)
        return failed[0] if failed else None

    def _blocked_by_failed_upgrade(self, rev: str) -> bool:
        return rev in self.failed_upgrades or self._failed_ancestor(rev) is not None

    def _no_downgrade(self, check: CheckId) -> None:
        """The roundtrip of a revision without ``downgrade()``: ``history`` reports it."""
        history = CheckId("history")
        if history in self.selected:
            self.results[check] = CheckResult(
                "skipped", self.title(check), ["no downgrade(); see history"]
            )
            return
        assert check.revision is not None
        info = self.history.info(check.revision)
        self.results[check] = CheckResult(
            "failed",
            self.title(check),
            [
                f"{info.path} ({self.history.describe(check.revision)}) has no downgrade() "
                "function; write it, or list the revision in irreversible"
            ],
        )

    def _blocked(self, check: CheckId, reason: str, blocker: CheckId) -> None:
        """Skip ``check`` because ``blocker`` failed; fail it when the blocker is not selected
        (a skip must never hide a failure nobody will see)."""
        if blocker in self.selected:
            self.results[check] = CheckResult("skipped", self.title(check), [reason])
            return
        lines = [reason]
        error = None
        if blocker.kind == "upgrade" and blocker.revision is not None:
            error = self.failed_upgrades.get(blocker.revision) or self.alone_errors.get(
                blocker.revision
            )
        if error is not None:
            assert blocker.revision is not None
            first = "" if blocker.revision == check.revision else " (needed first)"
            lines = [
                f"upgrade of {self.history.describe(blocker.revision)}{first} failed",
                *error.render(),
            ]
        elif blocker.kind == "history":
            lines = [reason]
        self.results[check] = CheckResult("failed", self.title(check), lines)

    def _history_result(self) -> CheckResult:
        s = self.settings
        problems = self.history.problems(heads=s.heads, irreversible=s.irreversible, start=s.start)
        title = self.title(CheckId("history"))
        if not problems:
            return CheckResult("passed", title)
        return CheckResult("failed", title, [p.message for p in problems])

    # ------------------------------------------------------------------ databases
    def template_name(self) -> str | None:
        """The database every pass clones: empty, or built by the bootstrap hook (and stamped
        at ``start`` when it is set; without ``start`` every revision runs from there)."""
        if not self.settings.bootstrap:
            if self.start is not None:
                raise SchemaguardError(
                    f"start = {self.settings.start!r} needs a bootstrap hook that builds the "
                    "schema at that revision: set bootstrap = 'package.module:function'"
                )
            return None
        if self._template_error is not None:
            raise self._template_error  # the hook fails the same way every time
        if not self._template_ready:
            self._template = self.server.create_database()
            try:
                self._bootstrap(self._template)
            except BootstrapError as exc:
                self._drop(self._template)
                self._template = None
                self._template_error = exc
                raise
            self._template_ready = True
        return str(self._template.name)

    def _bootstrap(self, db: Any) -> None:
        target = load_bootstrap(self.settings)  # checked at collection: cannot fail here
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        hook = self.settings.bootstrap
        engine = create_engine(db.url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                target(conn)
        except Exception as exc:
            error = self.project.hook_error(exc, f"bootstrap hook {hook}")
            raise BootstrapError(
                [f"the bootstrap hook {hook} failed on the template database:", *error.render()],
                error.cause(),
            ) from None
        finally:
            engine.dispose()
        if self.start is None:
            return  # the revisions run from base on the bootstrapped schema
        # stamp through env.py, so that its version table settings apply
        outcome = self._run_env(db, None, stamp=self.start)
        if outcome.error is not None:
            raise BootstrapError(
                [
                    f"stamping the database built by the bootstrap hook {hook} at start "
                    f"({self.settings.start}) failed:",
                    *outcome.error.render(),
                ],
                f"stamping the bootstrapped database at start: {outcome.error.cause()}",
            )

    def _new_state(self) -> None:
        self._discard()
        template = self.template_name()
        self._state = _State(self.server.create_database(template=template))

    def _discard(self) -> None:
        if self._state is not None:
            self._drop(self._state.db)
            self._state = None

    def _drop(self, db: Any) -> None:
        # best effort: the server drops every scratch database at the end anyway
        with contextlib.suppress(Exception):
            self.server.drop_database(db)

    # ------------------------------------------------------------------ one pass
    def _snapshot(self, conn: Connection) -> Snapshot:
        self.snapshot_count += 1
        return take_snapshot(conn, exclude_tables=(*DEFAULT_EXCLUDED_TABLES, self._version_table))

    def _read(
        self,
        conn: Connection,
        same_as: Reading | None = None,
        *,
        session: bool = False,
        since: Reading | None = None,
    ) -> Reading:
        """A snapshot that keeps its catalog rows; ``same_as`` when the catalog is the one it
        was read from (nothing is built then).  ``since`` is the last reading on ``conn``: only
        what changed after it is read again.  With ``session``, the session state
        (:func:`_session_state`) is read in a round trip the read makes anyway."""
        self.snapshot_count += 1
        reading = read_schema(
            conn,
            exclude_tables=(*DEFAULT_EXCLUDED_TABLES, self._version_table),
            same_as=same_as,
            also=_SESSION_STATE if session else (),
            since=since,
        )
        self.snapshot_reused += reading.reused
        return reading

    def _run_env(
        self,
        db: Any,
        plan: Callable[[Connection], Iterator[Step]] | None,
        *,
        stamp: str | None = None,
    ) -> PassOutcome:
        """One env.py run on ``db``, as the project runs (its driver, its ``env_context``)."""
        self.pass_count += 1
        paths = {r: i.path for r, i in self.history.revisions.items()}
        outcome = self.project.run_on(
            self.config_factory,
            plan or (lambda conn: iter(())),
            database=db.name,
            url=db.url,
            paths=paths,
            stamp=stamp,
        )
        self._version_table = outcome.version_table.partition(".")[2] or "alembic_version"
        self.step_count += len(outcome.completed)
        return outcome

    def _pass(
        self,
        state: _State,
        replay: list[str],
        pending: list[str],
        trips: set[str],
        cycle: bool,
        progress: list[str],
    ) -> PassOutcome:
        """Run one pass: replay (no checks), finish interrupted round trips, then the pending
        revisions, then the cycle.

        Each revision is checked as a user upgrading from its parent would apply it: when a
        revision leaves something in the session (a temporary table, a changed setting), the
        pass ends after it (committing what env.py began) and the next revision starts in a
        new env.py run on the same database (:attr:`_split`).
        """
        h = self.history
        phase: dict[str, Any] = {"step": None, "kind": None}
        # the session state read with the last snapshot, while no step has run since
        seen: list[tuple[Any, ...]] = []
        # the last reading on this pass's connection: the next one reads only what changed
        latest: list[Reading] = []
        # the DDL log of this pass (see ddl_log): made at the first read that another read
        # follows, so that the steps no read follows (revisions replayed or applied without
        # checks) do not pay for it; removed before the cycle, whose steps no read follows
        log: list[ddl_log.PassLog] = []

        def read(
            conn: Connection,
            same_as: Reading | None = None,
            *,
            session: bool = False,
            followed: bool = True,
        ) -> Reading:
            since = latest[0] if latest else None
            reading = self._read(conn, same_as, session=session, since=since)
            latest[:] = [reading]
            if reading.also is not None:
                seen[:] = [reading.also]
            if log:
                log[0].read(reading.catalog.logged)
            elif followed:
                log.append(ddl_log.PassLog(conn))
            return reading

        def plan(conn: Connection) -> Iterator[Step]:
            last: Reading | None = None
            session = _session_state(conn)
            stepped = False  # a checked step ran in this pass (only then may it split)

            def split() -> bool:
                if not left_behind(session, seen[0] if seen else _session_state(conn)):
                    return False
                self._split = True
                last = phase.get("rev")
                if last is not None and last not in self.session_leaks:
                    self.session_leaks.append(last)
                return True

            # One `alembic upgrade` from the clone's start (SQLAlchemy's memo of the types
            # created kept from step to step): the try of a revision that failed on its own,
            # and every replay through a revision that only such a run reaches.
            in_run = any(r in self.one_run for r in replay) or (
                bool(pending) and pending[0] in self._retrying
            )
            for rev in replay:
                phase.update(kind="replay", rev=rev)
                yield Step(rev, "upgrade", in_run=in_run)
                state.applied.append(rev)
            if self._base is None and not replay:
                # the next read is before the first round trip
                last = read(conn, followed=bool(pending) and pending[0] in trips)
                self._base = last.snapshot
                if not self.floor:
                    self._floor = self._base
            for rev, (before, first) in list(self._partial.items()):
                del self._partial[rev]
                stepped = True
                last = yield from trip(conn, rev, before, first)
                if last is None:
                    return
            for rev in pending:
                if rev in trips and self._leave_out(rev):
                    trips.discard(rev)
                    self._left_out.add(CheckId("roundtrip", rev))
                # a revision known to need its parent's session is applied in the same run
                known = rev in self._retrying or rev in self.one_run
                if stepped and not known and split():
                    return
                stepped = True
                if rev in trips:
                    before = last if last is not None else read(conn)
                phase.update(kind="up", rev=rev)
                watched = rev not in self._retrying
                if watched:
                    for observer in self.observers:
                        observer.before_upgrade(conn, rev)
                yield Step(rev, "upgrade", in_run=in_run and not watched)
                if watched:
                    for observer in self.observers:
                        observer.after_upgrade(conn, rev)
                state.applied.append(rev)
                progress.append(rev)
                self._ever_applied.add(rev)
                self.results.setdefault(
                    CheckId("upgrade", rev),
                    CheckResult("passed", self.title(CheckId("upgrade", rev))),
                )
                self._retrying.discard(rev)
                if rev in self.alone_errors and rev not in self.one_run:
                    self.one_run.add(rev)
                    self.results[CheckId("upgrade", rev)].lines.append(
                        f"upgrading from base to {h.describe(rev)} in one run (as `alembic "
                        f"upgrade {h.short(rev)}` on an empty database does) works: the checks "
                        "after it ran from there"
                    )
                last = None
                if rev in trips:
                    first = read(conn, session=True)
                    if split():
                        # the round trip goes on in a new session, as a user would run it
                        self._partial[rev] = (before, first)
                        return
                    last = yield from trip(conn, rev, before, first)
                    if last is None:
                        return
                if self._floor is None and rev in self.floor and self.floor <= set(state.applied):
                    self._floor = last.snapshot if last is not None else self._snapshot(conn)
            if not cycle:
                return
            if stepped and split():
                return
            # the cycle: head -> floor -> head
            check = CheckId("cycle")
            head = last.snapshot if last is not None else self._snapshot(conn)
            if log:
                log[0].close()  # no read follows the cycle's steps
            top = [r for r in state.applied if r not in self.floor]
            for rev in reversed(top):
                phase.update(kind="cycle-down", rev=rev)
                yield Step(rev, "downgrade")
            bottom = self._snapshot(conn)
            assert self._floor is not None
            floor_name = "base" if not self.floor and not self.pre_start else "the floor"
            down_diff = compare_snapshots(
                self._floor,
                bottom,
                action="downgrading every revision from head",
                expected_name=f"at {floor_name} before the first upgrade",
                actual_name="after downgrading from head",
            )
            for position, rev in enumerate(top):
                # if upgrading again fails, what the downgrades left usually says why
                phase.update(kind="cycle-up", rev=rev, down_diff=down_diff, floor=floor_name)
                # one `alembic upgrade head` from the floor (see Step.in_run)
                yield Step(rev, "upgrade", in_run=position > 0)
            again = self._snapshot(conn)
            up_diff = compare_snapshots(
                head,
                again,
                action="upgrading to head a second time",
                expected_name="at head the first time",
                actual_name="at head the second time",
                extra="created an extra",
                missing="did not create",
            )
            self.results[check] = self._cycle_result(check, down_diff, up_diff)
            if up_diff.errors:
                state.clean = False
            elif not down_diff.errors:
                self.head_snapshot = again

        def trip(
            conn: Connection, rev: str, before: Reading, first: Reading
        ) -> Generator[Step, None, Reading | None]:
            """Down and up again after the first upgrade of ``rev``: the schema after it, or
            None when upgrading again built another schema (the pass must end).

            After the downgrade, a snapshot whose catalog documents are those read before the
            upgrade is that snapshot (not built again); otherwise both are compared."""
            described = h.describe(rev)
            check = CheckId("roundtrip", rev)
            if self._leave_out(rev):  # the upgrade was this process's item, the round trip not
                self._left_out.add(check)
                return first
            phase.update(kind="down", rev=rev)
            yield Step(rev, "downgrade")
            after_down = read(conn, before)
            down_diff = compare_snapshots(
                before.snapshot,
                after_down.snapshot,
                action=f"downgrade of {described}",
                expected_name="before the upgrade",
                actual_name=f"after the downgrade of {described}",
            )
            # if upgrading again fails, the differences usually say why
            phase.update(kind="reup", rev=rev, down_diff=down_diff)
            yield Step(rev, "upgrade")
            again = read(conn, first, session=True)
            up_diff = compare_snapshots(
                first.snapshot,
                again.snapshot,
                action=f"upgrading {described} again",
                expected_name="after the first upgrade",
                actual_name="after the second upgrade",
                extra="created an extra",
                missing="did not create",
            )
            self.results[check] = self._roundtrip_result(check, down_diff, up_diff)
            if up_diff.errors:
                state.clean = False
                return None
            return again

        def gated(conn: Connection) -> Iterator[Step]:
            for step in plan(conn):
                seen.clear()  # a step runs: the session state read before it is past
                self._gate()
                yield step
            if log:
                log[0].close()

        outcome = self._run_env(state.db, gated)
        if outcome.error is not None:
            state.clean = False
            self._record_error(outcome.error, phase)
        return outcome

    def _record_error(self, error: StepError, phase: dict[str, Any]) -> None:
        kind = phase.get("kind")
        rev = phase.get("rev")
        h = self.history
        if error.step is None or rev is None:
            return
        error = self._with_fix(str(kind), rev, error)
        if kind == "up" and rev not in self._retrying:
            for observer in self.observers:
                observer.upgrade_failed(rev, error)
            # failed as its own step: the next pass tries one run from base to it
            self._retrying.add(rev)
            if rev in self.alone_errors:
                return  # known already (reached in one run before, in another clone)
            self.alone_errors[rev] = error
            self.results[CheckId("upgrade", rev)] = CheckResult(
                "failed",
                self.title(CheckId("upgrade", rev)),
                [f"upgrade of {h.describe(rev)} failed", *error.render()],
            )
            trip = CheckId("roundtrip", rev)
            if trip not in self.results:
                self._blocked(trip, self._needs(rev), CheckId("upgrade", rev))
        elif kind in ("up", "replay"):
            self._retrying.discard(rev)
            self.failed_upgrades[rev] = self.alone_errors.get(rev, error)
            upgrade = CheckId("upgrade", rev)
            if rev in self.alone_errors and upgrade in self.results:
                self.results[upgrade].lines.append(
                    f"upgrading from base to {h.describe(rev)} in one run failed too"
                )
            else:
                self.results[upgrade] = CheckResult(
                    "failed",
                    self.title(upgrade),
                    [f"upgrade of {h.describe(rev)} failed", *error.render()],
                )
            trip = CheckId("roundtrip", rev)
            if trip not in self.results:
                self._blocked(trip, self._needs(rev), CheckId("upgrade", rev))
        elif kind in ("down", "reup"):
            what = "downgrade" if kind == "down" else "upgrade after the downgrade"
            lines = [f"{what} of {h.describe(rev)} failed", *error.render()]
            down_diff = phase.get("down_diff")
            errors: list[str] = []
            if kind == "reup" and isinstance(down_diff, Differences):
                errors, _ = self._apply_column_order(down_diff)
                if errors:
                    lines = [
                        *self._empty_downgrade(rev),
                        f"downgrade of {h.describe(rev)} did not restore the schema before it:",
                        *self._downgrade_lines(rev, errors, down_diff),
                        *lines,
                    ]
            cause = None
            if kind == "down":
                # the cycle meets the very same error when it downgrades this revision
                self._down_errors[rev] = error
                cause = error.cause()
            self.results[CheckId("roundtrip", rev)] = CheckResult(
                "failed",
                self.title(CheckId("roundtrip", rev)),
                lines,
                location=self._downgrade_location(rev) if errors else None,
                findings=down_diff.findings(errors) if isinstance(down_diff, Differences) else [],
                cause=cause,
            )
        elif kind in ("cycle-down", "cycle-up"):
            what = "downgrade" if kind == "cycle-down" else "second upgrade"
            lines = [f"{what} of {h.describe(rev)} failed", *error.render()]
            down_diff = phase.get("down_diff")
            if kind == "cycle-up" and isinstance(down_diff, Differences):
                errors, _ = self._apply_column_order(down_diff)
                if errors:
                    lines = [
                        "downgrading from head did not restore the schema before the first "
                        "upgrade:",
                        *("  " + e for e in errors),
                        *lines,
                    ]
                elif rev not in self.one_run:
                    # nothing was left behind: what differs is that the first upgrade ran
                    # revision by revision, and this one is one run
                    lines.insert(1, self._one_run_only(rev, str(phase.get("floor", "base"))))
            for leak in self.session_leaks:
                # the items of the revisions after it ran in a new session; the cycle does not
                lines.append(
                    f"note: {h.describe(leak)} leaves a temporary table or a changed setting "
                    "in env.py's session; the cycle runs every revision in one session, as "
                    "`alembic upgrade head` from base does, so the revisions after it see it "
                    "(their upgrade and roundtrip items ran in a new session)"
                )
            # one root cause, one failure: the downgrade failed in the round trip with the
            # same error (a cycle that meets more, or other, is reported in full)
            same = kind == "cycle-down" and _same_error(self._down_errors.get(rev), error)
            self.results[CheckId("cycle")] = CheckResult(
                "failed",
                self.title(CheckId("cycle")),
                lines,
                cause=error.cause() if same and not self.session_leaks else None,
            )

    def _one_run_only(self, rev: str, floor: str) -> str:
        """Why the cycle's upgrade of ``rev`` may fail where its first upgrade passed."""
        command = "`alembic upgrade head` " + (
            "on an empty database" if floor == "base" else "from there"
        )
        return (
            f"its first upgrade (from its parent, in a run of its own) passed; this one is part "
            f"of one run from {floor} to head, as {command} runs it: that fails at this revision"
        )

    def _with_fix(self, kind: str, rev: str, error: StepError) -> StepError:
        """``error`` with the ``fix`` that only the step's place in the history can give (the
        driver gives the ones its message alone does, :func:`fix_for`)."""
        fix: str | None = None
        if kind in ("up", "replay"):
            fix = self._pre_alembic_fix(rev, error)
            if kind == "up" and fix is None:
                fix = self._existing_type_fix(error)
        if kind == "cycle-up":  # one run, whose revisions each passed on their own
            fix = self._remembered_type_fix(error)
        if kind in ("down", "cycle-down"):
            fix = self._irreversible_fix(rev, error)
            if kind == "cycle-down" and error.fix is not None:
                # what depends on the dropped object may come from a later revision
                fix = dependents_fix(error.error, later=True)
        return error if fix is None else dataclasses.replace(error, fix=fix)

    def _pre_alembic_fix(self, rev: str, error: StepError) -> str | None:
        """When ``rev`` is the first revision that does something (those before it, if any,
        have an empty ``upgrade()``: a base revision marking where the project adopted
        Alembic) and it fails on a table that does not exist: the schema begins before
        Alembic, and without a ``bootstrap`` hook nothing builds it."""
        missing = _MISSING_TABLE.match(error.error)
        if missing is None or error.fix is not None or self.settings.bootstrap:
            return None
        h = self.history
        before = h.ancestors(rev)
        if any(h.info(r).upgrade != "empty" for r in before):
            return None
        empty = [h.describe(r) for r in h.ordered(before)]
        if len(empty) > 3:
            empty[2:] = [f"{len(empty) - 2} more"]
        first = (
            f"{h.describe(rev)} comes first"
            if not before
            else f"{h.describe(rev)} is the first revision that changes the schema (the "
            f"upgrade() of {' and '.join(empty)} does nothing)"
        )
        return (
            f"{first}, yet it needs table {missing.group(1)}: "
            "when the schema begins before Alembic (tables made by create_all, then `alembic "
            'stamp`), give a hook that builds them: bootstrap = "package.module:function" '
            "in [tool.schemaguard], called with a SQLAlchemy connection (see "
            "docs/checks/migrations.md)"
        )

    @staticmethod
    def _existing_type_fix(error: StepError) -> str | None:
        """When the upgrade from the parent creates a type the parent's schema has (an earlier
        revision created it): ``alembic upgrade head`` from an empty database skips that
        ``CREATE TYPE`` (SQLAlchemy remembers the types created in the run), an upgrade from
        the parent does not."""
        existing = _EXISTING_TYPE.match(error.error)
        statement = (error.statement or "").lstrip().upper()
        if existing is None or error.fix is not None or not statement.startswith("CREATE TYPE"):
            return None
        name = existing.group(1)
        return (
            f"type {name} exists already at the parent (an earlier revision created it), and "
            f'this upgrade creates it again: use it without creating it, postgresql.ENUM(name="'
            f'{name}", create_type=False) (`alembic upgrade head` on an empty database may '
            "still work: SQLAlchemy skips the CREATE TYPE of a type it created earlier in the "
            "same run; an upgrade from the parent does not)"
        )

    @staticmethod
    def _remembered_type_fix(error: StepError) -> str | None:
        """When a step of one run (``alembic upgrade head`` from base) needs a type that
        SQLAlchemy created earlier in the run and that is gone since: SQLAlchemy remembers it
        created the type and skips its ``CREATE TYPE``, while each step run on its own (the
        memo empty) creates it."""
        missing = _MISSING_TYPE.match(error.error)
        if missing is None or error.fix is not None:
            return None
        name = missing.group(1)
        if not any(r == name or r.rpartition(".")[2] == name for r in error.remembered):
            return None
        short = name.rpartition(".")[2]
        return (
            f"type {name} was created earlier in this run by SQLAlchemy, which then skips its "
            "CREATE TYPE for the rest of the run, and it is gone now (dropped by SQL that "
            f'SQLAlchemy does not track, such as op.execute("DROP TYPE {short}")): create it '
            f'in this revision whatever ran before, postgresql.ENUM(..., name="{short}").create('
            "op.get_bind(), checkfirst=True), and use it without creating it, postgresql.ENUM("
            f'name="{short}", create_type=False) (upgraded on its own, the revision works; '
            "`alembic upgrade head` on an empty database fails here)"
        )

    def _irreversible_fix(self, rev: str, error: StepError) -> str | None:
        """When ``downgrade()`` of ``rev`` raised an exception of its own (``raise
        NotImplementedError(...)``): a revision meant not to be downgraded."""
        code = (error.location or "").partition(": ")[2]
        if error.fix is not None or error.statement is not None or not code.startswith("raise"):
            return None
        return (
            "if the revision is not meant to be downgraded, list it in irreversible "
            f'(irreversible = ["{self.history.short(rev)}"] in [tool.schemaguard]): its upgrade '
            "is still checked, and no check downgrades it"
        )

    def _downgrade_lines(self, rev: str, errors: list[str], diff: Differences) -> list[str]:
        """What the downgrade of ``rev`` did not restore, each followed by its usual fix in
        ``downgrade()`` (``  fix: in downgrade() (versions/3f2a9c_add_status.py:31), drop the
        type after the tables that use it: ...``)."""
        place = self.history.info(rev).downgrade_place
        lines: list[str] = []
        for error in errors:
            lines.append("  " + error)
            found = diff.found.get(error)
            fix = downgrade_fix(found, diff.expected) if found is not None else None
            if fix is not None:
                lines.append(f"  fix: in downgrade() ({place}), {fix}")
        return lines

    def _downgrade_location(self, rev: str) -> tuple[str, int] | None:
        info = self.history.info(rev)
        return (info.path, info.downgrade_line) if info.downgrade_line else None

    def _empty_downgrade(self, rev: str) -> list[str]:
        """The finding for an empty ``downgrade()`` whose upgrade changed the schema."""
        if self.history.info(rev).downgrade == "empty":
            return [self.history.empty_downgrade_message(rev)]
        return []

    # ------------------------------------------------------------------ reporting
    def _apply_column_order(self, diff: Differences) -> tuple[list[str], list[str]]:
        mode = self.settings.column_order
        if mode == "fail":
            return diff.errors + diff.column_order, []
        if mode == "ignore":
            return diff.errors, []
        return diff.errors, diff.column_order

    def _roundtrip_result(
        self, check: CheckId, down_diff: Differences, up_diff: Differences
    ) -> CheckResult:
        assert check.revision is not None
        described = self.history.describe(check.revision)
        down_errors, down_warn = self._apply_column_order(down_diff)
        up_errors, up_warn = self._apply_column_order(up_diff)
        lines: list[str] = []
        if down_errors:
            lines.extend(self._empty_downgrade(check.revision))
            lines.append(f"downgrade of {described} did not restore the schema before it:")
            lines.extend(self._downgrade_lines(check.revision, down_errors, down_diff))
        if up_errors:
            lines.append(
                f"upgrading {described} again built a different schema than the first time:"
            )
            lines.extend("  " + e for e in up_errors)
        result = CheckResult(
            "failed" if lines else "passed", self.title(check), lines, down_warn + up_warn
        )
        result.findings = down_diff.findings(down_errors) + up_diff.findings(up_errors)
        if down_errors:
            result.location = self._downgrade_location(check.revision)
        return result

    def _cycle_result(
        self, check: CheckId, down_diff: Differences, up_diff: Differences
    ) -> CheckResult:
        down_errors, down_warn = self._apply_column_order(down_diff)
        up_errors, up_warn = self._apply_column_order(up_diff)
        lines: list[str] = []
        if down_errors:
            lines.append(
                "downgrading from head did not restore the schema before the first upgrade:"
            )
            lines.extend("  " + e for e in down_errors)
        if up_errors:
            lines.append("upgrading to head again built a different schema than the first time:")
            lines.extend("  " + e for e in up_errors)
        return CheckResult(
            "failed" if lines else "passed",
            self.title(check),
            lines,
            down_warn + up_warn,
            findings=down_diff.findings(down_errors) + up_diff.findings(up_errors),
        )
