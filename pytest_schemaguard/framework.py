"""The item framework of the generated checks (``--schemaguard``): specs, providers, the item
class, reporting, and the xdist relay.  It knows no check family.

Registered as a plugin by :mod:`pytest_schemaguard.plugin` when the checks are enabled, after
which each check family (:mod:`pytest_schemaguard.migrations.items`,
:mod:`pytest_schemaguard.parity.items`, :mod:`pytest_schemaguard.legacy.items`) registers its
provider with :func:`register_provider`.  :func:`collect_items` is called from
``pytest_collection_modifyitems``; the items it returns are put first in the run, so ``-k``,
``-m schemaguard`` and ``--deselect`` apply to them.

Every check is a :class:`SchemaguardItem` (a ``pytest.Function`` whose function requests
fixtures by its signature) under one :class:`SchemaguardFile` collector named after the Alembic
configuration file: ``alembic.ini::history``, ``alembic.ini::roundtrip[3f2a9c-add_status]``.
A provider returns :class:`CheckSpec` objects; their functions report with :func:`report` (or
raise :class:`CheckFailure`).
"""

from __future__ import annotations

import contextvars
import inspect
import os
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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
from pytest_schemaguard.migrations.runner import CheckResult
from pytest_schemaguard.report.findings import plain
from pytest_schemaguard.stash import SETTINGS_KEY

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
    "item_order",
    "register_provider",
    "report",
]


_V = TypeVar("_V")


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
        self,
        title: str,
        lines: list[str],
        *,
        location: tuple[str, int] | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(title)
        self.title = title
        self.lines = lines
        self.location = location
        """Where the fix goes (file, 1-based line), reported as the failure's location."""
        self.cause = cause
        """The one-line cause shared by every check it fails (:attr:`CheckResult.cause`)."""

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
    running = _running.get()
    if running is not None and result.findings:
        # carried on the test report (REPORT_ATTRIBUTE), for the JSON report
        running.stash[_FINDINGS] = [f.to_dict() for f in result.findings]
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
            if running is not None:
                running.stash[_BLOCKED_BY] = result.cause
            raise pytest.skip.Exception(_blocked(blocker, result.cause), _use_item_location=True)
    if result.outcome == "skipped":
        # reported at the item's location (its revision file), not at this line
        raise pytest.skip.Exception(result.reason, _use_item_location=True)
    if result.outcome == "failed":
        raise CheckFailure(result.title, result.lines, location=result.location, cause=result.cause)


_running: contextvars.ContextVar[pytest.Item | None] = contextvars.ContextVar(
    "schemaguard_running_item", default=None
)
_FAILED_BY: pytest.StashKey[dict[str, str]] = pytest.StashKey()
_BLOCKED_BY: pytest.StashKey[str] = pytest.StashKey()


def _first_failed_by(cause: str) -> str | None:
    """The item that already failed with ``cause`` (None, and this item becomes it)."""
    item = _running.get()
    if item is None:
        return None
    failed_by = item.config.stash.setdefault(_FAILED_BY, {})
    first = failed_by.setdefault(cause, item.name)
    return None if first == item.name else first


_NEXT: pytest.StashKey[pytest.Item | None] = pytest.StashKey()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Keep the item this process runs after a check item (see :meth:`ItemOrder.following`):
    under pytest-xdist it is the worker's next one, not the next in the collected order."""
    if isinstance(item, SchemaguardItem):
        item.stash[_NEXT] = nextitem


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
    schemaguard_position: int | None = None
    """Its place among the check items, as their collector made them (see :func:`run_order`)."""

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
    if isinstance(item, SchemaguardItem):
        setattr(report, REPORT_ATTRIBUTE, _report_data(item, excinfo))
    return report


REPORT_ATTRIBUTE = "schemaguard"
"""The attribute of a check item's test reports holding its structured data (plain JSON
values, so xdist carries it from a worker to the controller): ``check``, ``revision``,
``title``, ``lines`` and ``findings``."""
_FINDINGS: pytest.StashKey[list[dict[str, Any]]] = pytest.StashKey()


def _report_data(item: SchemaguardItem, excinfo: Any) -> dict[str, Any]:
    check = getattr(item, "schemaguard_check", None)
    revision = getattr(item, "schemaguard_revision", None) or getattr(check, "revision", None)
    data: dict[str, Any] = {
        "check": item.originalname,
        "revision": revision,
        "findings": item.stash.get(_FINDINGS, []),
    }
    if _BLOCKED_BY in item.stash:
        data["blocked_by"] = item.stash[_BLOCKED_BY]
    if excinfo is not None and isinstance(excinfo.value, CheckFailure):
        data["title"] = plain(excinfo.value.title)
        data["lines"] = plain(list(excinfo.value.lines))
        if excinfo.value.cause is not None:
            path, line = item.reportinfo()[:2]
            data["cause"] = excinfo.value.cause
            data["item"] = [item.name, os.fspath(path), (line or 0) + 1]
    return data


@pytest.hookimpl(wrapper=True)
def pytest_report_from_serializable(
    config: pytest.Config, data: dict[str, Any]
) -> Generator[None, object, object]:
    """xdist, on the controller: a check failing with a cause that a check on another worker
    already failed with is reported as blocked by it, as in a run without xdist (each worker
    only knows its own failures); so are the checks its worker skipped as blocked by it."""
    report = yield
    if isinstance(report, pytest.TestReport) and report.when == "call":
        ours = getattr(report, REPORT_ATTRIBUTE, None)
        if isinstance(ours, dict):
            _reported_once(report, ours, config.stash.setdefault(_FAILED_BY, {}))
    return report


def _reported_once(
    report: pytest.TestReport, ours: dict[str, Any], failed_by: dict[str, str]
) -> None:
    cause = ours.get("cause")
    if report.failed and isinstance(cause, str):
        name, path, line = ours["item"]
        first = failed_by.setdefault(cause, name)
        if first != name:
            report.outcome = "skipped"
            report.longrepr = (path, line, f"Skipped: {_blocked(first, cause)}")
            # as the report of a check skipped at once: no failure's title and lines
            for key in ("title", "lines", "cause", "item"):
                ours.pop(key, None)
            ours["blocked_by"] = cause
        return
    blocked_by = ours.get("blocked_by")
    if report.skipped and isinstance(blocked_by, str) and isinstance(report.longrepr, tuple):
        # blocked, on its worker, by a failure that is reported here as blocked by another
        blocker = failed_by.get(blocked_by)
        if blocker is not None:
            path, line, _message = report.longrepr
            report.longrepr = (path, line, f"Skipped: {_blocked(blocker, blocked_by)}")


def _blocked(first: str, cause: str) -> str:
    return f"blocked: {first} failed ({cause})"


class SchemaguardFile(pytest.File):
    """The collector of the checks, named after the Alembic configuration file."""

    specs: list[CheckSpec]

    def collect(self) -> Iterator[pytest.Item]:
        mark = pytest.mark.schemaguard
        # The functions of one check kind come from one `def` and request the same fixtures:
        # their fixture closure is worked out once and shared, as pytest shares it between
        # the parametrized items of one test function.
        closures: dict[object, Any] = {}
        for position, spec in enumerate(self.specs):
            signature = _fixtures_key(spec.func)
            # No `originalname=` here: pytest 9.2 builds a Function's node id from
            # originalname + callspec, which would drop the "[...]" part of the name.
            item = SchemaguardItem.from_parent(
                self, name=spec.name, callobj=spec.func, fixtureinfo=closures.get(signature)
            )
            if signature is not None:
                closures.setdefault(signature, item._fixtureinfo)
            _parsed_id(item)
            item.originalname = spec.originalname
            item.add_marker(mark)
            item.schemaguard_path = spec.path
            item.schemaguard_position = position
            for key, value in spec.attributes.items():
                setattr(item, key, value)
            yield item


def run_order(item: pytest.Item) -> tuple[bool, int]:
    """A sort key that puts the check items first, in the order their collector made them,
    and leaves every other item where it was (a stable sort)."""
    position = getattr(item, "schemaguard_position", None)
    return (position is None, position or 0)


def _parsed_id(item: pytest.Item) -> None:
    """Give ``item`` (named ``roundtrip[<revision>]``) the structured id pytest 9.2 and later
    parse its node id string into (name ``roundtrip``, parameters ``<revision>``), as they do
    for the ids they read back (``--lf``, ``--sw``): built from the name alone, the id would
    hold ``roundtrip[<revision>]`` as its name and match none of them."""
    node_id = getattr(item, "_id", None)
    parse = getattr(type(node_id), "parse", None)
    if callable(parse) and "[" in item.name:
        item._id = parse(str(node_id))


def _fixtures_key(func: Callable[..., None]) -> object | None:
    """What decides the fixtures a check function requests: its code, for a plain function
    without parameter defaults or marks (None for anything else: not shared)."""
    if not inspect.isfunction(func) or hasattr(func, "pytestmark"):
        return None
    if func.__defaults__ is not None or func.__kwdefaults__ is not None:
        return None
    return func.__code__


@dataclass
class Anchor:
    """What the items hang under: the Alembic project (when there is one) and its file."""

    path: Path
    project: AlembicProject | None = None
    history: History | None = None
    load_error: str | None = None


ANCHOR_KEY: pytest.StashKey[Anchor] = pytest.StashKey()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """Under ``--schemaguard``: the Alembic project, its head, and the baseline file."""
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.enabled:
        return None
    try:
        anchor = project_anchor(config, settings)
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


def collect_items(
    session: pytest.Session, settings: Settings, items: list[pytest.Item]
) -> list[pytest.Item]:
    """The check items of this run (called from ``pytest_collection_modifyitems``), unless
    pytest collected them itself (:func:`collect_file`; they are among ``items``): then
    none."""
    if any(isinstance(item, SchemaguardItem) for item in items):
        return []
    return list(_collector(session, session, settings).collect())


def collect_file(
    file_path: Path, parent: pytest.Collector, settings: Settings
) -> SchemaguardFile | None:
    """The collector of the checks, when pytest collects the Alembic configuration file
    itself: an id on the command line (``alembic.ini::roundtrip[…]``), the file
    (``pytest alembic.ini``), or the directory holding it.  Other runs get the items at the
    end of collection (:func:`collect_items`), wherever the tests are."""
    if file_path.suffix not in (".ini", ".toml", ".cfg") and not settings.alembic_config:
        return None
    anchor = project_anchor(parent.config, settings)
    if file_path.resolve() != anchor.path.resolve():
        return None
    return _collector(parent, parent.session, settings)


def _collector(
    parent: pytest.Collector, session: pytest.Session, settings: Settings
) -> SchemaguardFile:
    anchor = project_anchor(session.config, settings)
    specs: list[CheckSpec] = []
    for provider in _PROVIDERS:
        specs.extend(provider(session, settings, anchor))
    collector = SchemaguardFile.from_parent(
        parent, path=anchor.path, nodeid=_nodeid(anchor.path, session)
    )
    collector.specs = specs
    return collector


def _nodeid(path: Path, session: pytest.Session) -> str | None:
    """The collector's node id: pytest's (the path from the rootdir) when the Alembic
    configuration is under the rootdir; else the relative path to it from the rootdir
    (``../venv/lib/…/alembic.ini``), which pytest would make ``::alembic.ini``, an id that
    names no file."""
    root = session.config.rootpath
    try:
        path.relative_to(root)
    except ValueError:
        return Path(os.path.relpath(path, root)).as_posix()
    return None


def project_anchor(config: pytest.Config, settings: Settings) -> Anchor:
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


@dataclass(frozen=True)
class ItemOrder:
    """The session's items as the check families need them, worked out once per list of items
    (every item asks; walking the items for each would take quadratic time)."""

    items: list[pytest.Item]
    length: int
    positions: dict[int, int]
    """``id(item)`` -> its position."""
    marked: dict[Any, tuple[Any, ...]]
    """Attribute name (and type) -> the values the items carrying it hold, in run order."""

    def position(self, item: pytest.Item) -> int | None:
        return self.positions.get(id(item))

    def values(self, attribute: str) -> tuple[Any, ...]:
        """The values of ``attribute`` on the items that have it (``schemaguard_safety``...)."""
        if attribute not in self.marked:
            self.marked[attribute] = tuple(
                getattr(item, attribute) for item in self.items if hasattr(item, attribute)
            )
        return self.marked[attribute]

    def values_of(self, attribute: str, kind: type[_V]) -> tuple[_V, ...]:
        """:meth:`values` that are instances of ``kind``."""
        key = (attribute, kind)
        if key not in self.marked:
            self.marked[key] = tuple(v for v in self.values(attribute) if isinstance(v, kind))
        return self.marked[key]

    def following(self, item: pytest.Item) -> pytest.Item | None:
        """The item this process runs after ``item`` (None: the last one): pytest's
        ``nextitem`` (under pytest-xdist the worker's next item, which it knows before it
        runs this one), else the next in the collected order."""
        if _NEXT in item.stash:
            return item.stash[_NEXT]
        position = self.position(item)
        if position is None or position + 1 >= self.length:
            return None
        return self.items[position + 1]

    def next_has(self, item: pytest.Item, *attributes: str) -> bool:
        """Whether the item after ``item`` (:meth:`following`) carries one of ``attributes``."""
        following = self.following(item)
        return following is not None and any(hasattr(following, a) for a in attributes)


_ITEM_ORDER: pytest.StashKey[ItemOrder] = pytest.StashKey()


def item_order(session: pytest.Session) -> ItemOrder:
    """The :class:`ItemOrder` of ``session.items`` as they are now."""
    items = session.items
    cached = session.config.stash.get(_ITEM_ORDER, None)
    if cached is None or cached.items is not items or cached.length != len(items):
        cached = ItemOrder(items, len(items), {id(it): i for i, it in enumerate(items)}, {})
        session.config.stash[_ITEM_ORDER] = cached
    return cached


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")
