"""The ``orm_parity`` and ``baseline`` items, their fixtures, and the baseline write at the end.

:func:`install` (called from :func:`pytest_schemaguard.items.collect_items`) registers this
module as a plugin (for its fixtures and hooks) and adds :func:`parity_checks` as a provider of
check items.  The items exist only when ``metadata`` (or an overriding ``schemaguard_metadata``
fixture in the rootdir's ``conftest.py``) or ``baseline`` is configured.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_schemaguard import framework as schemaguard_items
from pytest_schemaguard.config import Settings
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.runner import CheckId, CheckResult

if TYPE_CHECKING:
    # the checks (and the models' import) are imported when an item of theirs runs
    from sqlalchemy import MetaData

    from pytest_schemaguard.migrations.runner import MigrationRunner
    from pytest_schemaguard.parity.checks import ParityChecks

__all__ = [
    "AutogenerateWarning",
    "install",
    "parity_checks",
    "parity_items",
    "schemaguard_metadata",
    "schemaguard_parity",
]

PLUGIN_NAME = "schemaguard-parity"
PARITY_KEY: pytest.StashKey[ParityChecks] = pytest.StashKey()
MODELS_KEY: pytest.StashKey[MetaData | SchemaguardError] = pytest.StashKey()


class AutogenerateWarning(schemaguard_items.SchemaguardWarning):
    """The schemas agree in the catalog, but Alembic autogenerate still sees operations."""


def install(config: pytest.Config) -> None:
    """Register the parity fixtures and hooks, and the provider of the parity items."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(sys.modules[__name__], PLUGIN_NAME)
    schemaguard_items.register_provider(parity_checks)
    schemaguard_items.before_revisions_read(capture_models)


def capture_models(config: pytest.Config, settings: Settings) -> None:
    """Import the configured ``metadata`` and keep a copy of it (or why it cannot be had),
    before Alembic imports the revision modules, which may change the models."""
    if settings.metadata and MODELS_KEY not in config.stash:
        from pytest_schemaguard.parity.orm import capture_metadata

        try:
            config.stash[MODELS_KEY] = capture_metadata(
                settings.metadata, settings.root, where=settings.describe("metadata")
            )
        except SchemaguardError as exc:
            config.stash[MODELS_KEY] = exc


def metadata_overridden(session: pytest.Session) -> bool:
    """Whether a conftest.py overrides the ``schemaguard_metadata`` fixture."""
    # pytest 8.0 takes the node id where 8.1 and later take the node
    node: Any = session if pytest.version_tuple >= (8, 1) else session.nodeid
    defs = session._fixturemanager.getfixturedefs("schemaguard_metadata", node) or ()
    return any(getattr(d.func, "__module__", None) != __name__ for d in defs)


def parity_checks(
    session: pytest.Session, settings: Settings, anchor: schemaguard_items.Anchor
) -> list[schemaguard_items.CheckSpec]:
    """The ``orm_parity`` and ``baseline`` check specs this configuration asks for."""
    path = str(anchor.path)
    specs = []
    if settings.metadata or metadata_overridden(session):
        specs.append(schemaguard_items.CheckSpec("orm_parity", _run_orm_parity, "orm_parity", path))
    if settings.baseline:
        shown = str(settings.path(settings.baseline))
        specs.append(schemaguard_items.CheckSpec("baseline", _run_baseline, "baseline", shown))
    return specs


def parity_items(parent: pytest.Collector, settings: Settings) -> list[pytest.Item]:
    """The parity items as pytest items under ``parent`` (for callers without providers)."""
    anchor = parent.config.stash[schemaguard_items.ANCHOR_KEY]
    collector = schemaguard_items.SchemaguardFile.from_parent(parent, path=anchor.path)
    collector.specs = parity_checks(parent.session, settings, anchor)
    return list(collector.collect())


def _report(result: CheckResult, path: str | None) -> None:
    autogen = [w for w in result.warnings if "alembic autogenerate would emit" in w]
    for message in autogen:
        warnings.warn_explicit(
            AutogenerateWarning(f"{result.title}: {message}"),
            AutogenerateWarning,
            filename=path or "schemaguard",
            lineno=1,
        )
    rest = [w for w in result.warnings if w not in autogen]
    schemaguard_items.report(dataclasses.replace(result, warnings=rest), path=path)


MIGRATIONS_UNREADABLE = "the migrations could not be read (see history)"


def require_migrations(request: pytest.FixtureRequest) -> None:
    """Before a check that needs the migrated schema asks for its fixtures: when the
    migrations could not be read, or their history cannot be migrated (a missing parent, a
    cycle), skip it if the ``history`` item runs in this session (it says why), else fail it
    with that reason."""
    anchor = request.config.stash[schemaguard_items.ANCHOR_KEY]
    history = anchor.history
    unsound = history.unsound_reason if history is not None else None
    if anchor.project is not None and history is not None and unsound is None:
        return
    history_runs = any(
        isinstance(item, schemaguard_items.SchemaguardItem) and item.originalname == "history"
        for item in request.session.items
    )
    if unsound is not None:
        reason, lines = f"blocked: history failed ({unsound})", [unsound]
    else:
        reason = MIGRATIONS_UNREADABLE
        lines = [anchor.load_error] if anchor.load_error else []
    if history_runs:
        raise pytest.skip.Exception(reason, _use_item_location=True)
    what = "the migration history cannot be migrated" if unsound else MIGRATIONS_UNREADABLE
    raise schemaguard_items.CheckFailure(f"{request.node.name}: {what}", lines)


def _run_orm_parity(request: pytest.FixtureRequest) -> None:
    require_migrations(request)
    schemaguard_parity: ParityChecks = request.getfixturevalue("schemaguard_parity")
    # Requested here rather than as a parameter: a metadata that cannot be imported then
    # fails the item with its one-line message, instead of erroring its setup with a traceback.
    metadata: MetaData = request.getfixturevalue("schemaguard_metadata")
    _report(schemaguard_parity.orm_parity(metadata), None)


def _run_baseline(request: pytest.FixtureRequest) -> None:
    require_migrations(request)
    schemaguard_parity: ParityChecks = request.getfixturevalue("schemaguard_parity")
    _report(schemaguard_parity.baseline(), schemaguard_parity.settings.baseline)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def schemaguard_metadata(pytestconfig: pytest.Config, schemaguard_settings: Settings) -> MetaData:
    """The SQLAlchemy ``MetaData`` the ``orm_parity`` check creates.

    Default: imported from the ``metadata`` setting (``package.module:Base.metadata``, or a
    function returning it, with the configuration's directory on ``sys.path``) and copied
    before the revision modules are imported.  Override it in the rootdir's ``conftest.py`` to
    build the metadata another way (e.g. after importing every models module).
    """
    settings = schemaguard_settings
    if not settings.metadata:
        raise SchemaguardError(
            "no ORM metadata: set metadata = 'package.module:Base.metadata' in "
            "[tool.schemaguard], or override the schemaguard_metadata fixture"
        )
    captured = pytestconfig.stash.get(MODELS_KEY, None)
    if captured is None:
        from pytest_schemaguard.parity.orm import capture_metadata

        captured = capture_metadata(
            settings.metadata, settings.root, where=settings.describe("metadata")
        )
    if isinstance(captured, SchemaguardError):
        raise captured
    return captured


@pytest.fixture(scope="session")
def schemaguard_parity(
    request: pytest.FixtureRequest,
    schemaguard_settings: Settings,
    schemaguard_postgres: Any,
    schemaguard_alembic_config: Any,
    schemaguard_migrations: MigrationRunner,
) -> Iterator[ParityChecks]:
    """The parity checks of this session (migrated databases are shared and cached)."""
    from pytest_schemaguard.parity.checks import ParityChecks

    anchor = request.config.stash[schemaguard_items.ANCHOR_KEY]
    if anchor.project is None or anchor.history is None:
        raise SchemaguardError(anchor.load_error or "the migrations could not be read")
    runner = schemaguard_migrations
    selected = {c for c in runner.selected if c.kind == "upgrade"}

    def template() -> str | None:
        # The bootstrapped database at `start` is the migration runner's (made once).
        return runner.template_name() if schemaguard_settings.start else None

    checks = ParityChecks(
        anchor.project,
        anchor.history,
        schemaguard_settings,
        schemaguard_postgres,
        schemaguard_alembic_config,
        template=template,
        skip=frozenset(runner.pre_start),
        failed_upgrade_selected=lambda rev: CheckId("upgrade", rev) in selected,
        known_head=lambda: runner.head_snapshot,
    )
    request.config.stash[PARITY_KEY] = checks
    try:
        yield checks
    finally:
        checks.close()


# ------------------------------------------------------------------------------ hooks


_OUTCOMES = ("written", "unchanged", "notes", "errors")


def _baseline_outcomes(config: pytest.Config) -> dict[str, list[str]]:
    """What this process and (under xdist, on the controller) its workers did with baselines:
    ``written``, ``unchanged``, ``notes`` (statements a replay set aside) and ``errors``
    (baselines that could not be written)."""
    out: dict[str, list[str]] = {key: [] for key in _OUTCOMES}
    checks = config.stash.get(PARITY_KEY, None)
    if checks is not None:
        out["written"] += checks.written
        out["unchanged"] += checks.unchanged
        out["notes"] += checks.notes
        out["errors"] += checks.write_errors
    for output in schemaguard_items.relayed(config, "baselines"):
        for key in _OUTCOMES:
            out[key] += [line for line in output.get(key, []) if line not in out[key]]
    return out


def pytest_sessionfinish(session: pytest.Session) -> None:
    checks = session.config.stash.get(PARITY_KEY, None)
    if checks is not None and checks.pending:
        checks.flush()
    if checks is not None:
        # under xdist, the controller prints what the workers wrote
        schemaguard_items.relay_to_controller(
            session.config,
            "baselines",
            {
                "written": checks.written,
                "unchanged": checks.unchanged,
                "notes": checks.notes,
                "errors": checks.write_errors,
            },
        )
    if _baseline_outcomes(session.config)["errors"] and session.exitstatus == pytest.ExitCode.OK:
        # every check passed, but a baseline they produced was not written
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    out = _baseline_outcomes(config)
    for note in out["notes"]:
        terminalreporter.write_line(f"schemaguard: {note}")
    for shown in out["written"]:
        terminalreporter.write_line(f"schemaguard: wrote baseline {shown}")
    for shown in out["unchanged"]:
        terminalreporter.write_line(f"schemaguard: baseline {shown} is up to date")
    for error in out["errors"]:
        terminalreporter.write_line(f"ERROR: schemaguard: {error}", red=True, bold=True)
