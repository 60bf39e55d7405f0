"""The ``data[<rev>]`` checks: every revision upgraded (and downgraded) on tables with rows.

One :class:`DataWalk` serves one pytest process.  It runs its own ``env.py`` passes on its own
scratch databases (cloned from the migration runner's template), apart from the migration
checks' pass.  For each checked revision R, in the order the migration checks run:

1. the tables that exist at R's parent are topped up to ``data_rows`` rows
   (:class:`~pytest_schemaguard.data.seed.Seeder`);
2. R is upgraded: it must succeed;
3. R is downgraded: the tables that exist on both sides must hold the rows they held after the
   upgrade; then R is upgraded again, and the walk goes on to the next revision on the same
   database.

A step that fails ends the pass; the next pass replays the revisions done so far in a new clone
(without rows) and applies R there without rows first: if R fails there too, the failure is not
the rows' (``upgrade[R]``/``roundtrip[R]`` report it); if it works, the rows made it fail.  A
failure that depends on the generated values (a cast, a CHECK or foreign key added over columns
that hold arbitrary values) is a note, not a failure.

This module does not import pytest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pytest_schemaguard.config import Settings
from pytest_schemaguard.data.seed import (
    Hook,
    QualifiedName,
    Seeder,
    SeedOutcome,
    count_rows,
    shown_name,
)
from pytest_schemaguard.dbapi import execute_as_is, sqlstate_of
from pytest_schemaguard.errors import stopped_by
from pytest_schemaguard.migrations.alembic_driver import (
    AlembicProject,
    PassOutcome,
    Step,
    StepError,
    released_process_state,
)
from pytest_schemaguard.migrations.history import History
from pytest_schemaguard.migrations.runner import (
    BootstrapError,
    CheckResult,
    Layout,
    ServerLike,
    _session_state,
    left_behind,
)
from pytest_schemaguard.migrations.stepper import Stepper
from pytest_schemaguard.report.findings import Finding
from pytest_schemaguard.snapshot.introspect import DEFAULT_EXCLUDED_TABLES, take_snapshot
from pytest_schemaguard.snapshot.introspect.reading import own_transaction

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

__all__ = ["VALUE_DEPENDENT", "DataWalk"]

Phase = Literal["up", "down", "reup"]

VALUE_DEPENDENT = ("22", "23503", "23505", "23514", "23P01")
"""SQLSTATEs (or their class) of failures that depend on the values in the rows, not on there
being rows: data exceptions (a cast of generated text, a value out of range or too long), and a
foreign key, unique, CHECK or exclusion constraint added over columns that hold generated
values (a boolean, an enum or a foreign key repeats values among three rows).  An error of the
revision's own code that could not parse, decode or convert a value (:attr:`StepError.value_error`)
counts as a data exception."""

_FIXES = {
    "23502": "add a server_default or backfill before SET NOT NULL",
}
#: After an error of the revision's own Python code about a ``None``.
_NONE_FIX = (
    "the None is likely a NULL of the seeded rows (the last row of each table holds NULL in "
    "every nullable column): make the revision's code expect it, or make the column NOT NULL"
)


def _met_a_none(error: str) -> bool:
    """Whether an error of the revision's own code is about a ``None``: ``'NoneType' object has
    no attribute …``, ``… not NoneType``, or a ``None`` looked up as a key (``KeyError: None``,
    Neutron's 3b935b28e7a0 looking up a seeded NULL in a dict)."""
    return "NoneType" in error or error.strip().startswith("KeyError: None")


_TABLES = (
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_' "
    "ORDER BY 1, 2"
)
"""The tables the walk seeds and counts (partitions are filled through their parent)."""
_FINGERPRINT = (
    "md5(coalesce((SELECT string_agg(a.attname || ':' || a.atttypid || ':' || a.atttypmod "
    "|| ':' || a.attnotnull || ':' || a.atthasdef, ',' ORDER BY a.attnum) "
    "FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') || '/' || "
    "coalesce((SELECT string_agg(pg_catalog.pg_get_constraintdef(k.oid), ',' "
    "ORDER BY k.conname) FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid), ''))"
)
"""A table's columns and constraints in one value (to know that it has not changed)."""


@dataclass
class _State:
    db: Any
    applied: list[str] = field(default_factory=list)
    clean: bool = True
    seeded: bool = False
    """Rows were put into this database (an unchecked upgrade that fails on it is tried again
    on a new clone without rows)."""


@dataclass(frozen=True)
class _Failure:
    """A step of a checked revision that failed on tables with rows."""

    phase: Phase
    error: StepError
    sqlstate: str | None
    counts: dict[str, int]
    """Rows per table when the step ran."""


@dataclass
class _Trip:
    """What the check of a revision knows after its first upgrade (kept when its round trip
    goes on in a new session)."""

    verify: _Failure | None = None
    """Set when this is the try without rows of a step that failed on rows."""
    tables: list[str] = field(default_factory=list)
    """The seeded tables that exist after the upgrade too."""
    before: dict[str, int] = field(default_factory=dict)
    """Rows per table before the upgrade."""
    after_up: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    location: tuple[str, int] | None = None
    findings: list[Finding] = field(default_factory=list)
    """The structured findings behind :attr:`lines` (for the JSON report)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _server_message(error: str) -> str:
    """``column "x" ... contains null values`` from ``NotNullViolation: column "x" ...``."""
    first = next((line.strip() for line in error.strip().splitlines() if line.strip()), "")
    head, sep, rest = first.partition(": ")
    if head == "KeyError":
        return first  # the message is the key alone: "None" would say nothing
    if sep and head.replace(".", "").replace("_", "").isalnum() and " " not in head:
        first = rest
    if first.startswith("{"):  # pg8000: the server's fields, the message under 'M'
        import ast

        with contextlib.suppress(ValueError, SyntaxError):
            fields = ast.literal_eval(first)
            if isinstance(fields, dict) and isinstance(fields.get("M"), str):
                return str(fields["M"])
    return first


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _tables_in(statement: str | None) -> list[str]:
    """The tables a statement names (qualified, ``public`` when it names no schema)."""
    if not statement:
        return []
    import sqlglot
    from sqlglot import exp

    try:
        trees = sqlglot.parse(statement, read="postgres")
    except Exception:
        return []
    out: list[str] = []
    for tree in trees:
        if tree is None:
            continue
        for table in tree.find_all(exp.Table):
            name = f"{table.db or 'public'}.{table.name}"
            if table.name and name not in out:
                out.append(name)
    return out


class DataWalk:
    """Runs the ``data`` checks of one Alembic project against scratch databases."""

    def __init__(
        self,
        project: AlembicProject,
        history: History,
        settings: Settings,
        server: ServerLike,
        config_factory: Callable[[str], Config],
        *,
        template: Callable[[], str | None],
        hook: Hook | None = None,
        selected: Callable[[str, str], bool] = lambda kind, rev: False,
    ) -> None:
        self.project = project
        self.history = history
        self.settings = settings
        self.server = server
        self.config_factory: Callable[[str], Config] = lambda url: config_factory(
            project.driver.url(url)
        )
        self.layout = Layout.build(history, settings)
        self.template = template
        self.selected = selected
        """Whether the item ``kind[rev]`` (``upgrade``, ``roundtrip``) runs in this session."""
        self.seeder = Seeder(settings.data_rows, hook)
        self.results: dict[str, CheckResult] = {}
        self.broken: dict[str, StepError] = {}
        """Revisions whose upgrade fails without rows too."""
        self._verify: dict[str, _Failure] = {}
        """Revisions that failed on rows, to be tried without rows in the next pass."""
        self._partial: dict[str, _Trip] = {}
        """Round trips that go on in the next env.py run (the session changed)."""
        self._split = False
        self._stopped: tuple[list[str], str] | None = None
        """What stopped every check when a pass raised (see :meth:`_run`)."""
        self.one_run: set[str] = set()
        """Revisions that fail on their own, without rows, applied in the same env.py run as
        the revisions before them (as ``alembic upgrade`` from base does)."""
        self._noted: set[tuple[str, str]] = set()
        self._tried: tuple[frozenset[tuple[str, str]], dict[str, int]] | None = None
        """The tables that still lacked rows after the last seeding, and the row counts then."""
        self._state: _State | None = None
        self._stepper = Stepper()
        self._stepper_todo: set[str] = set()
        self.skip_ahead = False
        """Upgrade the revisions before the awaited one without their checks (an xdist
        worker: the items in between went to other workers, which check them)."""
        self._left_out: set[str] = set()
        """Checks the pass left out (:attr:`skip_ahead`): not run, nor due, in this pass."""
        self.pass_count = 0

    def title(self, rev: str) -> str:
        return f"data of {self.history.describe(rev)} ({self.history.info(rev).path})"

    def revisions(self) -> list[str]:
        """The revisions with a ``data`` check, in run order."""
        return self.layout.revisions()

    # ------------------------------------------------------------------ results
    def result(self, rev: str, batch: Iterable[str] = ()) -> CheckResult:
        """The result of ``data[rev]``, running (with it) the checks in ``batch`` not yet
        known."""
        if rev not in self.results:
            todo = [rev, *(r for r in batch if r not in self.results and r != rev)]
            self._run_stepwise(rev, todo)
        result = self.results[rev]
        for behind in self.history.ancestors_among(rev, self.one_run):
            note = (
                f"{self.history.describe(behind)} fails when upgraded on its own (see "
                f"upgrade[{self.history.label(behind)}]); this check ran after upgrading from "
                "base to it in one run"
            )
            if result.outcome == "failed" and f"note: {note}" not in result.lines:
                result.lines.append(f"note: {note}")
            elif result.outcome == "passed" and note not in result.notes:
                result.notes.append(note)
        return result

    def _run_stepwise(self, rev: str, todo: list[str]) -> None:
        stepper = self._stepper
        if stepper.running and (rev not in self._stepper_todo or rev in self._left_out):
            stepper.finish()
        if rev in self.results:
            return
        if not stepper.running:
            self._stepper_todo = set(todo)
            stepper.start(lambda: self._run(todo), name="schemaguard-data")
        stepper.wait_for(lambda: rev in self.results, key=rev)
        if rev not in self.results:  # pragma: no cover - the worker always settles it
            self._run([rev])

    def settle(self) -> None:
        """Finish the work under way (the next pytest item is not a ``data`` check)."""
        if self._stepper.running:
            self._stepper.finish()

    def _gate(self) -> None:
        if self._stepper.in_worker():
            self._stepper.gate(released_process_state)

    def _leave_out(self, rev: str) -> bool:
        """With :attr:`skip_ahead`, whether the pass may upgrade ``rev`` without its check:
        the revision awaited (once one is) comes later, so this process's items have gone
        past ``rev``'s."""
        if not self.skip_ahead or not self._stepper.in_worker():
            return False
        self._gate()  # until an item waits for something: the awaited revision is then known
        awaited = self._stepper.awaited_key
        return isinstance(awaited, str) and self.history.comes_after(awaited, rev)

    def close(self) -> None:
        if self._stepper.running:
            self._stepper.abandon()
        self._discard()

    # ------------------------------------------------------------------ planning
    def _run(self, todo: list[str]) -> None:
        """Run the data checks of ``todo`` not yet known; an exception of this plugin's own
        code fails them all with one cause (see ``MigrationRunner._run``)."""
        if self._stopped is not None:
            self._fail({r for r in todo if r not in self.results}, *self._stopped)
            return
        try:
            self._run_batch(todo)
        except Exception as exc:
            self._stopped = stopped_by(exc, "data checks")
            self._partial.clear()
            self._discard()
            self._fail({r for r in todo if r not in self.results}, *self._stopped)

    def _run_batch(self, todo: list[str]) -> None:
        self._left_out.clear()
        targets = {r for r in todo if r not in self.results}
        if not targets:
            return
        h = self.history
        needed = h.closure(targets) - self.layout.pre_start
        order = [r for r in self.revisions() if r in needed]
        state = self._state
        if state is None or not state.clean or any(r in state.applied for r in targets):
            try:
                self._new_state()
            except BootstrapError as exc:
                self._fail(targets, exc.lines, exc.cause)
                return
        state = self._state
        assert state is not None
        progress = list(state.applied)
        while True:
            pending = [r for r in order if r not in progress and self._broken_by(r) is None]
            if not pending and not self._partial:
                break
            replay = [r for r in progress if r not in state.applied]
            self._split = False
            outcome = self._pass(state, replay, pending, targets, progress)
            if outcome.error is None and state.clean:
                if self._split:
                    continue  # the next revision starts in a new session, on this database
                break
            if outcome.error is not None and outcome.error.step is None:
                lines = [outcome.error.headline(), *outcome.error.render()]
                self._fail(targets, lines, outcome.error.cause())
                self._discard()
                return
            self._new_state()
            state = self._state
            assert state is not None
        for rev in targets:
            if rev in self.results:
                continue
            blocker = self._broken_by(rev)
            if blocker is not None:
                self.results[rev] = self._blocked(rev, blocker)
            else:  # pragma: no cover - a planning gap would be a bug
                self.results[rev] = CheckResult(
                    "failed", self.title(rev), ["this check was not run (internal error)"]
                )

    def _broken_by(self, rev: str) -> str | None:
        if rev in self.broken:
            return rev
        failed = self.history.ancestors_among(rev, self.broken)
        return failed[0] if failed else None

    # ------------------------------------------------------------------ databases
    def _fail(self, targets: Iterable[str], lines: list[str], cause: str) -> None:
        """Every revision of ``targets`` not yet known fails with what stopped them all."""
        for rev in targets:
            if rev not in self.results:
                self.results[rev] = CheckResult("failed", self.title(rev), lines, cause=cause)

    def _new_state(self) -> None:
        self._discard()
        self._state = _State(self.server.create_database(template=self.template()))

    def _discard(self) -> None:
        if self._state is not None:
            with contextlib.suppress(Exception):
                self.server.drop_database(self._state.db)
            self._state = None

    # ------------------------------------------------------------------ one pass
    def _pass(
        self,
        state: _State,
        replay: list[str],
        pending: list[str],
        targets: set[str],
        progress: list[str],
    ) -> PassOutcome:
        h = self.history
        phase: dict[str, Any] = {"kind": None, "rev": None}
        captured: dict[str, BaseException | None] = {"error": None}
        listening: list[Any] = []

        def on_error(context: Any) -> None:
            captured["error"] = context.original_exception

        # One `alembic upgrade` from the clone's start (see Step.in_run) when the pass goes
        # through a revision that only such a run reaches.
        in_run = any(r in self.one_run for r in (*replay, *pending[:1]))

        def step(
            rev: str, direction: Literal["upgrade", "downgrade"], kind: str, *, run: bool = False
        ) -> Step:
            self._gate()
            phase.update(kind=kind, rev=rev, seeded=state.seeded)
            captured["error"] = None
            return Step(rev, direction, in_run=run and in_run)

        def done(rev: str) -> None:
            state.applied.append(rev)
            progress.append(rev)

        def plan(conn: Connection) -> Iterator[Step]:
            from sqlalchemy import event

            engine = conn.engine
            event.listen(engine, "handle_error", on_error)
            listening.append(engine)
            session = _session_state(conn)

            def split() -> bool:
                """Whether the session differs from the pass's start (a temporary table, a
                setting): then the next step runs in a new env.py run, as a user would run it
                after the previous one."""
                if not left_behind(session, _session_state(conn)):
                    return False
                self._split = True
                return True

            for rev in replay:
                yield step(rev, "upgrade", "replay", run=True)
                state.applied.append(rev)
            exclude = (*DEFAULT_EXCLUDED_TABLES, _version_table())
            for rev, trip in list(self._partial.items()):
                del self._partial[rev]
                yield from finish(conn, rev, trip)
                done(rev)
            for rev in pending:
                if rev in progress:
                    continue
                failure = self._verify.pop(rev, None)
                if failure is not None:
                    if rev not in self.one_run and split():
                        self._verify[rev] = failure
                        return
                    phase["failure"] = failure
                    yield step(rev, "upgrade", "v-up")
                    if failure.phase == "up":
                        self.results[rev] = self._rows_result(rev, failure)
                    else:
                        trip = _Trip(verify=failure)
                        if split():
                            self._partial[rev] = trip
                            return
                        yield from finish(conn, rev, trip)
                    done(rev)
                    continue
                if rev in targets and rev not in self.results and self._leave_out(rev):
                    targets.discard(rev)
                    self._left_out.add(rev)
                if rev not in targets or rev in self.results:
                    yield step(rev, "upgrade", "plain", run=rev in self.one_run)
                    done(rev)
                    continue
                if rev not in self.one_run and split():
                    return
                self._gate()
                tables, counts, seeded = self._seed(conn, rev, exclude)
                state.seeded = state.seeded or bool(seeded.added)
                phase["counts"] = counts
                yield step(rev, "upgrade", "up")
                trip = _Trip(lines=list(seeded.hook_errors), notes=self._notes(seeded.unseedable))
                if rev in self.layout.irreversible or rev in self.layout.no_downgrade:
                    self.results[rev] = self._checked(rev, trip)
                    done(rev)
                    continue
                present = set(_tables_at(conn, exclude))
                trip.tables = [t for t in tables if t in present]
                trip.before = counts
                trip.after_up = count_rows(conn, trip.tables)
                if split():
                    self._partial[rev] = trip  # the round trip goes on in a new session
                    return
                yield from finish(conn, rev, trip)
                done(rev)

        def finish(conn: Connection, rev: str, trip: _Trip) -> Generator[Step, None, None]:
            """Down and up again after the first upgrade of ``rev``."""
            if trip.verify is not None:
                phase["failure"] = trip.verify
                yield step(rev, "downgrade", "v-down")
                yield step(rev, "upgrade", "v-reup")
                self.results[rev] = self._rows_result(rev, trip.verify)
                return
            phase["counts"] = trip.after_up
            yield step(rev, "downgrade", "down")
            after_down = count_rows(conn, trip.tables)
            # rows the upgrade added (a data migration's own) may go again; the rows that were
            # there before the upgrade and are still there after it must stay
            lost = [
                t
                for t in trip.tables
                if after_down[t] < min(trip.before.get(t, 0), trip.after_up[t])
            ]
            if lost:
                trip.lines.extend(self._lost_lines(rev, lost, trip.after_up, after_down))
                trip.findings.extend(self._lost_findings(rev, lost, trip, after_down))
                info = h.info(rev)
                if info.downgrade_line:
                    trip.location = (info.path, info.downgrade_line)
            yield step(rev, "upgrade", "reup")
            self.results[rev] = self._checked(rev, trip)

        try:
            outcome = self._run_env(state.db, plan)
        finally:
            from sqlalchemy import event

            for engine in listening:
                with contextlib.suppress(Exception):
                    event.remove(engine, "handle_error", on_error)
        if outcome.error is not None:
            state.clean = False
            self._record(outcome.error, phase, sqlstate_of(captured["error"]))
        return outcome

    def _seed(
        self, conn: Connection, rev: str, exclude: tuple[str, ...]
    ) -> tuple[list[str], dict[str, int], SeedOutcome]:
        """Top up the tables before ``rev``: the tables, their rows, and what seeding did.

        The schema is read (a snapshot) only when some table lacks rows, and not when the
        tables that lack them are those the last seeding could not fill, unchanged, with the
        same row counts everywhere (a table no row can be generated for is not tried again at
        every revision)."""
        tables = _tables_at(conn, exclude)
        counts = count_rows(conn, tables)
        wanted = self.settings.data_rows
        if all(counts[t] >= wanted for t in tables):
            return tables, counts, SeedOutcome()
        prints = _fingerprints(conn, exclude)
        lacking = frozenset((t, prints.get(t, "")) for t in tables if counts[t] < wanted)
        if self.seeder.hook is None and self._tried == (lacking, counts):
            return tables, counts, SeedOutcome()
        before = take_snapshot(conn, exclude_tables=exclude)
        # each row is tried in a savepoint: in a transaction of its own when env.py put the
        # connection in AUTOCOMMIT mode
        with own_transaction(conn):
            seeded = self.seeder.seed(conn, before, upgrading=rev, counts=counts)
        if seeded.added:
            counts = count_rows(conn, tables)
        still = frozenset((t, prints.get(t, "")) for t in tables if counts[t] < wanted)
        self._tried = (still, counts)
        return tables, counts, seeded

    def _run_env(self, db: Any, plan: Callable[[Connection], Iterator[Step]]) -> PassOutcome:
        self.pass_count += 1
        paths = {r: i.path for r, i in self.history.revisions.items()}
        return self.project.run_on(
            self.config_factory,
            plan,
            database=db.name,
            url=db.url,
            paths=paths,
        )

    def _record(self, error: StepError, phase: dict[str, Any], sqlstate: str | None) -> None:
        kind, rev = phase.get("kind"), phase.get("rev")
        if error.step is None or rev is None:
            return
        if kind in ("up", "down", "reup"):
            counts = dict(phase.get("counts") or {})
            self._verify[rev] = _Failure(kind, error, sqlstate, counts)
        elif kind == "v-up" and rev not in self.one_run:
            # fails on its own without rows: the next pass tries it in one run from base
            self.one_run.add(rev)
            self.results[rev] = self._without_rows(rev, "up", error)
        elif kind == "plain" and phase.get("seeded"):
            pass  # the rows of an earlier check: the next pass applies it on a new clone
        elif kind in ("v-up", "replay", "plain"):
            self.broken[rev] = error
            if rev not in self.results:
                self.results[rev] = self._without_rows(rev, "up", error)
        elif kind in ("v-down", "v-reup"):
            failure = phase.get("failure")
            assert isinstance(failure, _Failure)
            self.results[rev] = self._without_rows(rev, failure.phase, error)

    # ------------------------------------------------------------------ results
    def _what(self, rev: str, phase: Phase) -> str:
        described = self.history.describe(rev)
        return {
            "up": f"upgrade of {described}",
            "down": f"downgrade of {described}",
            "reup": f"upgrading {described} again after its downgrade",
        }[phase]

    def _checked(self, rev: str, trip: _Trip) -> CheckResult:
        return CheckResult(
            "failed" if trip.lines else "passed",
            self.title(rev),
            trip.lines,
            notes=trip.notes,
            location=trip.location,
            findings=trip.findings,
        )

    def _rows_result(self, rev: str, failure: _Failure) -> CheckResult:
        """``data[rev]`` when a step failed on rows and works without them."""
        error = failure.error
        statement = _one_line(error.statement) if error.statement else None
        if statement is None and error.location:
            statement = error.location.partition(": ")[2] or error.location
        named = _tables_in(error.statement)
        seeded = {t: c for t, c in failure.counts.items() if c > 0}
        shown = [t for t in named if t in seeded] or sorted(seeded)
        listed = ", ".join(f"{shown_name(t)} {_rows(seeded[t])}" for t in shown[:5])
        if len(shown) > 5:
            listed += f" and {len(shown) - 5} more"
        what = self._what(rev, failure.phase)
        sentence = f"{what} fails on tables with rows: "
        if statement:
            sentence += f"{statement} — "
        sentence += f"{_server_message(error.error)} (seeded: {listed or 'no rows'})"
        state = failure.sqlstate or ""
        # the revision's own code could not parse, decode or convert a generated value
        # (json.loads of text that is not JSON): Python's counterpart of a data exception
        value_error = not state and error.value_error
        if state[:2] in VALUE_DEPENDENT or state in VALUE_DEPENDENT or value_error:
            note = (
                f"{sentence}; this depends on the generated values (see docs/checks/data.md), "
                "so it is not a failure: check it against real rows"
            )
            return CheckResult("passed", self.title(rev), notes=[note])
        fix = _FIXES.get(state)
        if fix is None and not state and error.statement is None and _met_a_none(error.error):
            fix = _NONE_FIX  # the revision's own code met a None
        if fix:
            sentence += f"; {fix}"
        line = _line_of(error.location)
        table = next((t for t in named if t in seeded), None)
        finding = Finding(
            kind="table" if table else "revision",
            object=table or rev,
            attribute=None,
            category="failed",
            left_label="on empty tables",
            left=None,
            right_label="on tables with rows",
            right=_server_message(error.error),
            message=sentence,
            file=error.path if line is not None else self.history.info(rev).path,
            line=line,
            rule="fails-with-rows",
            revision=rev,
            statement=statement,
            table=table,
            rows=seeded,
        )
        return CheckResult(
            "failed", self.title(rev), [sentence, *error.render()], findings=[finding]
        )

    def _without_rows(self, rev: str, phase: Phase, error: StepError) -> CheckResult:
        """``data[rev]`` when the step fails on empty tables too: the migration items say it."""
        item = "upgrade" if phase == "up" else "roundtrip"
        label = self.history.label(rev)
        what = self._what(rev, phase)
        if self.selected(item, rev):
            return CheckResult(
                "skipped",
                self.title(rev),
                [f"{what} fails without rows too (see {item}[{label}])"],
            )
        return CheckResult(
            "failed", self.title(rev), [f"{what} fails without rows too", *error.render()]
        )

    def _blocked(self, rev: str, blocker: str) -> CheckResult:
        label = self.history.label(blocker)
        if blocker != rev and self.selected("upgrade", blocker):
            return CheckResult("skipped", self.title(rev), [f"needs {label}, whose upgrade failed"])
        error = self.broken[blocker]
        first = "" if blocker == rev else " (needed first)"
        return CheckResult(
            "failed",
            self.title(rev),
            [f"upgrade of {self.history.describe(blocker)}{first} failed", *error.render()],
        )

    def _lost_lines(
        self, rev: str, lost: list[str], after_up: dict[str, int], after_down: dict[str, int]
    ) -> list[str]:
        listed = ", ".join(
            f"{shown_name(t)} ({_rows(after_up[t])} after the upgrade, {after_down[t]} after "
            "the downgrade)"
            for t in lost
        )
        place = self.history.info(rev).downgrade_place
        return [
            f"downgrade of {self.history.describe(rev)} deletes rows of tables that exist "
            f"before and after it: {listed}",
            f"  fix: in downgrade() ({place}), keep the rows of the tables it does not drop "
            "(alter them in place rather than dropping and recreating them; delete nothing)",
        ]

    def _lost_findings(
        self, rev: str, lost: list[str], trip: _Trip, after_down: dict[str, int]
    ) -> list[Finding]:
        """One finding per table whose rows the downgrade deleted, at ``def downgrade``."""
        info = self.history.info(rev)
        described = self.history.describe(rev)
        return [
            Finding(
                kind="table",
                object=table,
                attribute="rows",
                category="changed",
                left_label="after the upgrade",
                left=str(trip.after_up[table]),
                right_label="after the downgrade",
                right=str(after_down[table]),
                message=(
                    f"downgrade of {described} deletes rows of {shown_name(table)}, which "
                    f"exists before and after it ({_rows(trip.after_up[table])} after the "
                    f"upgrade, {after_down[table]} after the downgrade)"
                ),
                file=info.path,
                line=info.downgrade_line,
                rule="deletes-rows",
                revision=rev,
                table=table,
                rows={table: trip.before.get(table, 0)},
            )
            for table in lost
        ]

    def _notes(self, unseedable: dict[str, str]) -> list[str]:
        notes = []
        for table, why in unseedable.items():
            if (table, why) in self._noted:
                continue
            self._noted.add((table, why))
            notes.append(
                f"table {shown_name(table)} could not be seeded ({why}); its upgrade ran on "
                "it empty"
            )
        return notes


def _line_of(location: str | None) -> int | None:
    """The line of a :attr:`StepError.location` (``name.py:18: code``)."""
    if not location:
        return None
    parts = location.split(":", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _version_table() -> str:
    """The version table env.py configured (left out of the seeded tables)."""
    from alembic import context

    return str(context.get_context().version_table)


def _tables_at(conn: Connection, exclude: tuple[str, ...]) -> list[str]:
    """The tables of the database, without those named in ``exclude`` (the version table)."""
    rows = execute_as_is(conn, f"SELECT n.nspname, c.relname {_TABLES}").all()
    return [QualifiedName(schema, name) for schema, name in rows if name not in exclude]


def _fingerprints(conn: Connection, exclude: tuple[str, ...]) -> dict[str, str]:
    """:func:`_tables_at`, each with a fingerprint of its columns and constraints."""
    rows = execute_as_is(conn, f"SELECT n.nspname, c.relname, {_FINGERPRINT} {_TABLES}").all()
    return {f"{schema}.{name}": str(p) for schema, name, p in rows if name not in exclude}
