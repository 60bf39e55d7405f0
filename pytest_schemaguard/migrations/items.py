"""The migration checks' items: ``history``, ``upgrade[<rev>]``, ``roundtrip[<rev>]`` and
``cycle``, and the fixtures they use (``schemaguard_alembic_config``,
``schemaguard_migrations``).

Installed by :mod:`pytest_schemaguard.plugin` (first of the check families); the work itself is
done by :class:`~pytest_schemaguard.migrations.runner.MigrationRunner`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from pytest_schemaguard.config import Settings
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.framework import (
    ANCHOR_KEY,
    Anchor,
    CheckFailure,
    CheckSpec,
    is_xdist_worker,
    item_order,
    project_anchor,
    register_provider,
    report,
)
from pytest_schemaguard.migrations.runner import CheckId, Layout, MigrationRunner, check_setup
from pytest_schemaguard.stash import SETTINGS_KEY

RUNNER_KEY: pytest.StashKey[MigrationRunner] = pytest.StashKey()


def install(config: pytest.Config) -> None:
    """Add the migration checks' provider, hooks and fixtures to the run."""
    register_provider(_migration_checks)
    module = sys.modules[__name__]
    if not config.pluginmanager.is_registered(module):
        config.pluginmanager.register(module, "schemaguard-migrations")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist the controller collects nothing (its workers do, where a usage error is
    lost): check the migrations' setup here first, before any worker starts, so a mistake is
    one ``ERROR:`` line and exit status 4 as in a serial run."""
    config = session.config
    if is_xdist_worker(config) or not config.pluginmanager.has_plugin("dsession"):
        return  # serial runs and workers check it at collection
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.enabled:
        return
    try:
        anchor = project_anchor(config, settings)
        if anchor.project is not None and anchor.history is not None:
            check_setup(anchor.project, anchor.history, settings)
    except SchemaguardError as exc:
        raise pytest.UsageError(f"schemaguard: {exc}") from None


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


def _check_function(check: CheckId, path: str | None) -> Callable[..., None]:
    def run_check(schemaguard_migrations: MigrationRunner, request: pytest.FixtureRequest) -> None:
        runner = schemaguard_migrations
        selected = _selected_checks(request.session)
        batch = _from_here_on(check, selected) if is_xdist_worker(request.config) else selected
        try:
            result = runner.result(check, batch)
        finally:
            if not _next_is_migration_check(request):
                runner.settle()
        report(result, path=path)

    return run_check


def _selected_checks(session: pytest.Session) -> tuple[CheckId, ...]:
    """The migration checks selected, in run order (worked out once per list of items)."""
    return item_order(session).values_of("schemaguard_check", CheckId)


def _next_is_migration_check(request: pytest.FixtureRequest) -> bool:
    """Whether the item after this one is a migration check too (then a suspended pass may
    wait for it; anything else must not run while a pass is suspended)."""
    following = item_order(request.session).following(request.node)
    return isinstance(getattr(following, "schemaguard_check", None), CheckId)


def _from_here_on(check: CheckId, selected: Sequence[CheckId]) -> list[CheckId]:
    """Under xdist a worker does not know which items it will get next (xdist hands them out in
    order, a few at a time, to whichever worker is free), so it goes on as a serial run would:
    the ``upgrade`` and ``roundtrip`` checks of this revision and of every selected revision
    after it, in one pass that waits between items.  The worker's next item is then a few steps
    further on the same connection, not a new pass that replays its ancestors in a new clone;
    the checks in between that another worker reports are done here too (cheaper than a new
    pass).  Any other check (``cycle``) ends that pass first and starts its own."""
    if check.revision is None:
        return []
    kinds = ("upgrade", "roundtrip")
    try:
        start = selected.index(check)
    except ValueError:
        return []
    return [c for c in selected[start:] if c.kind in kinds and c.revision is not None]


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
    # Each item does its own share of one pass, suspended between items, serially and on an
    # xdist worker alike (a worker's batch: see _from_here_on).
    runner.stepwise = True
    # A worker's items come in order, with runs of other workers' items in between.
    runner.skip_ahead = is_xdist_worker(request.config)
    request.config.stash[RUNNER_KEY] = runner
    try:
        yield runner
    finally:
        runner.close()
