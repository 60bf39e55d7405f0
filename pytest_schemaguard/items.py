"""The generated check items (``--schemaguard``) and the fixtures they use.

Registered as a plugin by :mod:`pytest_schemaguard.plugin` when the checks are enabled; its
:func:`collect_items` is called from ``pytest_collection_modifyitems`` and the items it returns
are put first in the run, so ``-k``, ``-m schemaguard`` and ``--deselect`` apply to them.

Every check is a :class:`SchemaguardItem` (a ``pytest.Function`` whose function requests
fixtures by its signature) under one :class:`SchemaguardFile` collector named after the Alembic
configuration file: ``alembic.ini::history``, ``alembic.ini::roundtrip[3f2a9c-add_status]``.
Other checks add themselves with :func:`register_provider`; a provider returns
:class:`CheckSpec` objects and reports with :func:`report` (or raises :class:`CheckFailure`).
"""

from __future__ import annotations

import contextvars
import os
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import TerminalRepr  # the base of pytest's own failure reports
from _pytest._io import TerminalWriter

from pytest_schemaguard.config import Settings
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.alembic_driver import (
    AlembicProject,
    AlembicSetupError,
    find_alembic_config,
)
from pytest_schemaguard.migrations.history import History
from pytest_schemaguard.migrations.runner import (
    CheckId,
    CheckResult,
    Layout,
    MigrationRunner,
    check_setup,
)

__all__ = [
    "CheckFailure",
    "CheckNoteWarning",
    "CheckSpec",
    "ColumnOrderWarning",
    "SchemaguardFile",
    "SchemaguardItem",
    "SchemaguardWarning",
    "before_revisions_read",
    "collect_items",
    "register_provider",
    "report",
]


class SchemaguardWarning(pytest.PytestWarning):
    """Base class of the warnings pytest-schemaguard emits from its checks."""


class ColumnOrderWarning(SchemaguardWarning):
    """Two schemas differ only in the order of a table's columns (``column_order = "warn"``)."""


class CheckNoteWarning(SchemaguardWarning):
    """A check passed, but ran under a condition worth knowing (e.g. after a revision that
    fails when upgraded on its own was reached in one run from base)."""


class CheckFailure(Exception):
    """An expected failure of a check: reported as its title and lines, without a traceback."""

    def __init__(
        self, title: str, lines: list[str], *, location: tuple[str, int] | None = None
    ) -> None:
        super().__init__(title)
        self.title = title
        self.lines = lines
        self.location = location
        """Where the fix goes (file, 1-based line), reported as the failure's location."""

    def render(self) -> str:
        return "\n".join([self.title, *self.lines])


@dataclass(frozen=True)
class _Crash:
    message: str


class CheckFailureRepr(TerminalRepr):
    """How a failed check shows: its title (bold on a colour terminal: pytest's ``--color``,
    which honours ``NO_COLOR``), then its lines; as text (xdist, JUnit XML) it is plain, and the
    short test summary shows the title."""

    def __init__(self, failure: CheckFailure) -> None:
        self.title = failure.title
        self.lines = failure.lines
        self.reprcrash = _Crash(failure.title)

    def toterminal(self, tw: TerminalWriter) -> None:
        tw.line(self.title, bold=True)
        for line in self.lines:
            tw.line(line)


@dataclass(frozen=True)
class CheckSpec:
    """One item to generate: its name, the function it runs, and what to show."""

    name: str
    """Item name, e.g. ``roundtrip[3f2a9c-add_status]``."""
    func: Callable[..., None]
    """Runs the check; requests fixtures by its parameter names."""
    originalname: str
    """The check's kind, e.g. ``roundtrip``."""
    path: str | None = None
    """File the item reports as its location (a revision file, a SQL script)."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Set on the item (e.g. ``schemaguard_check``), for hooks that look at items."""


Provider = Callable[[pytest.Session, Settings, "Anchor"], list[CheckSpec]]
_PROVIDERS: list[Provider] = []


def register_provider(provider: Provider) -> Provider:
    """Add a source of check items (called once per collection, in registration order)."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


BeforeRead = Callable[[pytest.Config, Settings], None]
_BEFORE_READ: list[BeforeRead] = []


def before_revisions_read(callback: BeforeRead) -> BeforeRead:
    """Run ``callback`` once per process just before the revision modules are imported (they
    run in this process and may change objects of the project, e.g. its models)."""
    if callback not in _BEFORE_READ:
        _BEFORE_READ.append(callback)
    return callback


def report(result: CheckResult, *, path: str | None = None) -> None:
    """Turn a check result into the item's outcome (pass, skip, fail; warnings emitted)."""
    for message in result.warnings:
        warnings.warn_explicit(
            ColumnOrderWarning(f"{result.title}: {message}"),
            ColumnOrderWarning,
            filename=path or "schemaguard",
            lineno=1,
        )
    for note in result.notes:
        warnings.warn_explicit(
            CheckNoteWarning(f"{result.title}: {note}"),
            CheckNoteWarning,
            filename=path or "schemaguard",
            lineno=1,
        )
    if result.outcome == "failed" and result.cause is not None:
        blocker = _first_failed_by(result.cause)
        if blocker is not None:
            raise pytest.skip.Exception(
                f"blocked: {blocker} failed ({result.cause})", _use_item_location=True
            )
    if result.outcome == "skipped":
        # reported at the item's location (its revision file), not at this line
        raise pytest.skip.Exception(result.reason, _use_item_location=True)
    if result.outcome == "failed":
        raise CheckFailure(result.title, result.lines, location=result.location)


_running: contextvars.ContextVar[pytest.Item | None] = contextvars.ContextVar(
    "schemaguard_running_item", default=None
)
_FAILED_BY: pytest.StashKey[dict[str, str]] = pytest.StashKey()


def _first_failed_by(cause: str) -> str | None:
    """The item that already failed with ``cause`` (None, and this item becomes it)."""
    item = _running.get()
    if item is None:
        return None
    failed_by = item.config.stash.setdefault(_FAILED_BY, {})
    first = failed_by.setdefault(cause, item.name)
    return None if first == item.name else first


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    token = _running.set(item)
    try:
        return (yield)
    finally:
        _running.reset(token)


class SchemaguardItem(pytest.Function):
    """A generated check; expected failures print as a message, not a traceback."""

    schemaguard_path: str | None = None

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str | Any:
        if isinstance(excinfo.value, CheckFailure):
            return CheckFailureRepr(excinfo.value)
        if isinstance(excinfo.value, SchemaguardError):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        return self.schemaguard_path or self.path, 0, self.name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failure that knows where its fix goes (a revision's ``downgrade()`` that left
    something behind) is reported there (JUnit's ``file``/``line``), not at the item."""
    report = yield
    excinfo = call.excinfo
    if excinfo is not None and isinstance(excinfo.value, CheckFailure):
        location = excinfo.value.location
        if location is not None:
            report.location = (location[0], location[1] - 1, report.location[2])
    return report


class SchemaguardFile(pytest.File):
    """The collector of the checks, named after the Alembic configuration file."""

    specs: list[CheckSpec]

    def collect(self) -> Iterator[pytest.Item]:
        for spec in self.specs:
            # No `originalname=` here: pytest 9.2 builds a Function's node id from
            # originalname + callspec, which would drop the "[...]" part of the name.
            item = SchemaguardItem.from_parent(self, name=spec.name, callobj=spec.func)
            item.originalname = spec.originalname
            item.add_marker(pytest.mark.schemaguard)
            item.schemaguard_path = spec.path
            for key, value in spec.attributes.items():
                setattr(item, key, value)
            yield item


@dataclass
class Anchor:
    """What the items hang under: the Alembic project (when there is one) and its file."""

    path: Path
    project: AlembicProject | None = None
    history: History | None = None
    load_error: str | None = None


ANCHOR_KEY: pytest.StashKey[Anchor] = pytest.StashKey()
RUNNER_KEY: pytest.StashKey[MigrationRunner] = pytest.StashKey()


def pytest_configure(config: pytest.Config) -> None:
    # The parity checks (orm_parity, baseline) add their provider, fixtures and hooks. Done at
    # configure time so that a schemaguard_metadata fixture in conftest.py overrides theirs.
    from pytest_schemaguard.legacy.items import install as install_legacy
    from pytest_schemaguard.parity.items import install

    install(config)
    install_legacy(config)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist the controller collects nothing (its workers do, where a usage error is
    lost): check the migrations' setup here first, before any worker starts, so a mistake is
    one ``ERROR:`` line and exit status 4 as in a serial run."""
    from pytest_schemaguard.plugin import SETTINGS_KEY

    config = session.config
    if _is_xdist_worker(config) or not config.pluginmanager.has_plugin("dsession"):
        return  # serial runs and workers check it at collection
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.enabled:
        return
    try:
        anchor = _anchor(config, settings)
        if anchor.project is not None and anchor.history is not None:
            check_setup(anchor.project, anchor.history, settings)
    except SchemaguardError as exc:
        raise pytest.UsageError(f"schemaguard: {exc}") from None


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """Under ``--schemaguard``: the Alembic project, its head, and the baseline file."""
    from pytest_schemaguard.plugin import SETTINGS_KEY

    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.enabled:
        return None
    try:
        anchor = _anchor(config, settings)
    except SchemaguardError:
        return None  # collection reports it, as a usage error
    lines = []
    history = anchor.history
    shown = anchor.project.display_path if anchor.project else str(anchor.path)
    if history is None:
        lines.append(f"schemaguard: migrations {shown}: cannot be read (see the history item)")
    else:
        heads = ", ".join(history.label(h) for h in history.heads) or "none"
        count = len(history.revisions)
        lines.append(
            f"schemaguard: migrations {shown}: {count} revision{'s' if count != 1 else ''}, "
            f"head {heads}"
        )
    if anchor.project is not None:
        driver = anchor.project.driver
        lines.append(f"schemaguard: driver {driver.name} ({driver.source})")
    if settings.baseline:
        at = "" if settings.baseline_revision == "head" else f" at {settings.baseline_revision}"
        state = "" if settings.path(settings.baseline).is_file() else " (missing)"
        lines.append(f"schemaguard: baseline {settings.baseline}{at}{state}")
    return lines


def collect_items(session: pytest.Session, settings: Settings) -> list[pytest.Item]:
    """The check items of this run (called from ``pytest_collection_modifyitems``)."""
    anchor = _anchor(session.config, settings)
    specs: list[CheckSpec] = []
    for provider in (_migration_checks, *_PROVIDERS):
        specs.extend(provider(session, settings, anchor))
    collector = SchemaguardFile.from_parent(session, path=anchor.path)
    collector.specs = specs
    return list(collector.collect())


def _anchor(config: pytest.Config, settings: Settings) -> Anchor:
    """The Alembic project and its history, read once per process (the report header and the
    collection share it)."""
    cached = config.stash.get(ANCHOR_KEY, None)
    if cached is not None:
        return cached
    config_path = find_alembic_config(settings.root, settings.alembic_config)
    project = AlembicProject(
        config_path, rootdir=config.rootpath, step_timeout=settings.step_timeout
    )
    project.prepare(settings)  # the project's driver and env_context: usage errors here
    anchor = Anchor(config_path, project)
    for callback in _BEFORE_READ:
        callback(config, settings)
    try:
        anchor.history = History.build(project.read_revisions())
    except AlembicSetupError as exc:
        anchor.load_error = str(exc)
    config.stash[ANCHOR_KEY] = anchor
    return anchor


# ------------------------------------------------------------------------------ migrations


def _migration_checks(
    session: pytest.Session, settings: Settings, anchor: Anchor
) -> list[CheckSpec]:
    history = anchor.history
    if history is None:
        message = anchor.load_error or "the migrations could not be read"
        title = f"history of {anchor.project.display_path if anchor.project else anchor.path}"

        def broken() -> None:
            raise CheckFailure(title, [message])

        return [CheckSpec("history", broken, "history", str(anchor.path))]
    assert anchor.project is not None
    check_setup(anchor.project, history, settings)  # a usage error, reported once
    specs = []
    for check in Layout.build(history, settings).checks():
        name: str
        if check.revision is None:
            name = check.kind
            path = str(anchor.path)
        else:
            name = f"{check.kind}[{history.label(check.revision)}]"
            path = history.info(check.revision).path
        specs.append(
            CheckSpec(
                name,
                _check_function(check, path),
                check.kind,
                path,
                {"schemaguard_check": check},
            )
        )
    return specs


# ----------------------------------------------------------------- xdist: worker → controller

_RELAYED: pytest.StashKey[dict[str, list[Any]]] = pytest.StashKey()
_RELAY_PREFIX = "schemaguard_"


def relay_to_controller(config: pytest.Config, key: str, value: Any) -> None:
    """On an xdist worker, hand ``value`` to the controller (at session finish); elsewhere
    nothing. The controller reads it back with :func:`relayed`."""
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_RELAY_PREFIX + key] = value


def relayed(config: pytest.Config, key: str) -> list[Any]:
    """What the finished workers handed over under ``key``, one value per worker."""
    return config.stash.get(_RELAYED, {}).get(_RELAY_PREFIX + key, [])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist, on the controller: keep what a finished worker handed over."""
    store = node.config.stash.setdefault(_RELAYED, {})
    for key, value in (getattr(node, "workeroutput", None) or {}).items():
        if key.startswith(_RELAY_PREFIX):
            store.setdefault(key, []).append(value)


def _check_function(check: CheckId, path: str | None) -> Callable[..., None]:
    def run_check(schemaguard_migrations: MigrationRunner, request: pytest.FixtureRequest) -> None:
        runner = schemaguard_migrations
        if _is_xdist_worker(request.config):
            batch = _siblings(check, _selected_checks(request.session))
        else:
            batch = _batch(request.session)
        try:
            result = runner.result(check, batch)
        finally:
            if not _next_is_migration_check(request):
                runner.settle()
        report(result, path=path)

    return run_check


_POSITIONS: pytest.StashKey[tuple[int, dict[int, int]]] = pytest.StashKey()


def _next_is_migration_check(request: pytest.FixtureRequest) -> bool:
    """Whether the item after this one is a migration check too (then a suspended pass may
    wait for it; anything else must not run while a pass is suspended)."""
    items = request.session.items
    cached = request.config.stash.get(_POSITIONS, None)
    if cached is None or cached[0] != len(items):
        cached = (len(items), {id(item): i for i, item in enumerate(items)})
        request.config.stash[_POSITIONS] = cached
    position = cached[1].get(id(request.node))
    if position is None or position + 1 >= len(items):
        return False
    return isinstance(getattr(items[position + 1], "schemaguard_check", None), CheckId)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _selected_checks(session: pytest.Session) -> list[CheckId]:
    return [
        item.schemaguard_check  # type: ignore[attr-defined]
        for item in session.items
        if isinstance(getattr(item, "schemaguard_check", None), CheckId)
    ]


def _batch(session: pytest.Session) -> list[CheckId]:
    return _selected_checks(session)


def _siblings(check: CheckId, selected: list[CheckId]) -> list[CheckId]:
    """Under xdist a worker does not know which items it will get next, so it runs one
    revision's selected ``upgrade`` and ``roundtrip`` together: one pass up, down and up from
    the parent, which leaves that revision applied, so the worker's next revision (xdist hands
    items out in order) continues from there instead of replaying every ancestor in a new clone.
    """
    if check.revision is None:
        return []
    return [
        c
        for c in selected
        if c.revision == check.revision and c.kind in ("upgrade", "roundtrip") and c != check
    ]


@pytest.fixture(scope="session")
def schemaguard_alembic_config(pytestconfig: pytest.Config) -> Callable[[str], Any]:
    """Makes the ``alembic.config.Config`` that points the project's env.py at a database.

    Called with the scratch database's SQLAlchemy URL before every migration pass, in the
    project's driver (``postgresql+asyncpg://…`` for an asyncpg project, a plain
    ``postgresql://…`` when the project's own URL is plain; see the ``driver`` setting); must
    return a new ``Config``.  The default loads the project's configuration and sets
    ``sqlalchemy.url``; the runner also hands env.py an open connection on that driver in
    ``config.attributes["connection"]`` (unless the returned config already holds one) and sets
    the ``database_url_env`` variable while env.py runs.  Override it (in the rootdir's
    ``conftest.py``) for anything else, e.g. a URL in ``config.attributes``.
    """
    anchor = pytestconfig.stash[ANCHOR_KEY]
    project = anchor.project
    if project is None:  # pragma: no cover - collection always sets a project
        raise SchemaguardError("no Alembic project")
    return project.make_config


@pytest.fixture(scope="session")
def schemaguard_migrations(
    request: pytest.FixtureRequest,
    schemaguard_settings: Settings,
    schemaguard_postgres: Any,
    schemaguard_alembic_config: Callable[[str], Any],
) -> Iterator[MigrationRunner]:
    """The runner of the migration checks of this session (results are cached in it)."""
    anchor = request.config.stash[ANCHOR_KEY]
    if anchor.project is None or anchor.history is None:
        # the checks that need the migrations skip or fail before asking for this fixture
        raise SchemaguardError("the migrations could not be read (see history)")
    runner = MigrationRunner(
        anchor.project,
        anchor.history,
        schemaguard_settings,
        schemaguard_postgres,
        schemaguard_alembic_config,
    )
    runner.selected = set(_selected_checks(request.session))
    # Serially, each item does its own share of one pass, suspended between items; an xdist
    # worker does not know its next item, so it runs a revision's checks together.
    runner.stepwise = not _is_xdist_worker(request.config)
    request.config.stash[RUNNER_KEY] = runner
    try:
        yield runner
    finally:
        runner.close()
