"""The ``data[<rev>]`` items: each revision upgraded (and downgraded) on tables with rows.

:func:`install` (called from :mod:`pytest_schemaguard.plugin` at configure time) registers this
module as a plugin (its fixture and hooks) and adds :func:`data_checks` as a provider of check
items: one ``data[<rev>]`` per revision with an ``upgrade`` item, unless ``data_rows`` is 0.
The work is done by :class:`~pytest_schemaguard.data.walk.DataWalk`, in its own ``env.py``
passes on its own scratch databases.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_schemaguard import framework
from pytest_schemaguard.config import Settings
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.hooks import HookError, import_hook
from pytest_schemaguard.migrations.runner import CheckId, Layout, MigrationRunner
from pytest_schemaguard.stash import SETTINGS_KEY

if TYPE_CHECKING:
    # the walk and its seeding are imported when a data item is run
    from pytest_schemaguard.data.seed import Hook
    from pytest_schemaguard.data.walk import DataWalk

__all__ = ["data_checks", "install", "load_data_hook", "schemaguard_data"]

PLUGIN_NAME = "schemaguard-data"
WALK_KEY: pytest.StashKey[DataWalk] = pytest.StashKey()


def install(config: pytest.Config) -> None:
    """Register the data fixture and hooks, and the provider of the ``data`` items."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(sys.modules[__name__], PLUGIN_NAME)
    framework.register_provider(data_checks)


def load_data_hook(settings: Settings) -> Hook | None:
    """The ``data_hook`` function (None when it is not set); a usage error when it cannot be
    imported or is not a function."""
    if not settings.data_hook:
        return None
    where = settings.describe("data_hook")
    target = import_hook(settings.data_hook, settings.root, where=where)
    if not callable(target):
        raise HookError(
            f"{where} = {settings.data_hook!r} is a {type(target).__name__}, not a function "
            "taking a SeedRequest"
        )
    return cast("Hook", target)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist: a ``data_hook`` that cannot be imported is one ``ERROR:`` line from the
    controller, as in a serial run (the workers' collection errors would be lost)."""
    config = session.config
    if framework.is_xdist_worker(config) or not config.pluginmanager.has_plugin("dsession"):
        return
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.enabled or settings.data_rows == 0:
        return
    try:
        load_data_hook(settings)
    except SchemaguardError as exc:
        raise pytest.UsageError(f"schemaguard: {exc}") from None


def data_checks(
    session: pytest.Session, settings: Settings, anchor: framework.Anchor
) -> list[framework.CheckSpec]:
    """One ``data[<rev>]`` spec per revision the migration checks upgrade."""
    history = anchor.history
    if settings.data_rows == 0 or history is None or anchor.project is None:
        return []
    if not history.sound or not history.revisions:
        return []  # the history item says why nothing migrates
    load_data_hook(settings)
    specs = []
    for rev in Layout.build(history, settings).revisions():
        path = history.info(rev).path
        specs.append(
            framework.CheckSpec(
                f"data[{history.label(rev)}]",
                _check_function(rev, path),
                "data",
                path,
                {"schemaguard_data": rev, "schemaguard_revision": rev},
            )
        )
    return specs


def _check_function(rev: str, path: str) -> Callable[..., None]:
    def run_data(schemaguard_data: DataWalk, request: pytest.FixtureRequest) -> None:
        walk = schemaguard_data
        batch = _selected(request.session)
        if framework.is_xdist_worker(request.config):
            # the worker goes on as a serial run would, from this revision on (see the
            # migration checks' _from_here_on): its next data item is a few steps further
            batch = batch[batch.index(rev) :] if rev in batch else []
        try:
            result = walk.result(rev, batch)
        finally:
            if not _next_is_data_check(request):
                walk.settle()
        framework.report(result, path=path)

    return run_data


def _selected(session: pytest.Session) -> list[str]:
    values = framework.item_order(session).values("schemaguard_data")
    return [v for v in values if isinstance(v, str)]


def _next_is_data_check(request: pytest.FixtureRequest) -> bool:
    return framework.item_order(request.session).next_has(request.node, "schemaguard_data")


@pytest.fixture(scope="session")
def schemaguard_data(
    request: pytest.FixtureRequest,
    schemaguard_settings: Settings,
    schemaguard_postgres: Any,
    schemaguard_alembic_config: Callable[[str], Any],
    schemaguard_migrations: MigrationRunner,
) -> Iterator[DataWalk]:
    """The walk of the ``data`` checks of this session (results are cached in it)."""
    from pytest_schemaguard.data.walk import DataWalk

    anchor = request.config.stash[framework.ANCHOR_KEY]
    if anchor.project is None or anchor.history is None:
        raise SchemaguardError("the migrations could not be read (see history)")
    selected_checks = {
        item.schemaguard_check  # type: ignore[attr-defined]
        for item in request.session.items
        if isinstance(getattr(item, "schemaguard_check", None), CheckId)
    }
    runner = schemaguard_migrations
    walk = DataWalk(
        anchor.project,
        anchor.history,
        schemaguard_settings,
        schemaguard_postgres,
        schemaguard_alembic_config,
        template=runner.template_name,
        hook=load_data_hook(schemaguard_settings),
        selected=lambda kind, rev: CheckId(kind, rev) in selected_checks,  # type: ignore[arg-type]
    )
    # A worker's items come in order, with runs of other workers' items in between.
    walk.skip_ahead = framework.is_xdist_worker(request.config)
    request.config.stash[WALK_KEY] = walk
    try:
        yield walk
    finally:
        walk.close()
