"""The ``live_drift`` item (``--schemaguard-live-dsn``).

Installed by :mod:`pytest_schemaguard.plugin` only when ``live_dsn`` is set; the work is done
by :func:`~pytest_schemaguard.drift.check.check_drift`, on the parity checks' migrated
databases (``schemaguard_parity``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_schemaguard import framework
from pytest_schemaguard.config import Settings
from pytest_schemaguard.drift.check import check_drift, drift_target, read_project_live
from pytest_schemaguard.drift.live import LiveError, connect_live
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.runner import CheckResult
from pytest_schemaguard.parity.items import metadata_overridden, require_migrations
from pytest_schemaguard.parity.migrated import MigrationFailed
from pytest_schemaguard.urls import mask_url

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from pytest_schemaguard.parity.checks import ParityChecks

__all__ = ["drift_checks", "install"]


def install(config: pytest.Config) -> None:
    """Add the provider of the ``live_drift`` item."""
    framework.register_provider(drift_checks)


def drift_checks(
    session: pytest.Session, settings: Settings, anchor: framework.Anchor
) -> list[framework.CheckSpec]:
    if not settings.live_dsn:
        return []
    return [framework.CheckSpec("live_drift", _run_live_drift, "live_drift", str(anchor.path))]


def _run_live_drift(request: pytest.FixtureRequest) -> None:
    settings: Settings = request.getfixturevalue("schemaguard_settings")
    dsn = settings.live_dsn
    assert dsn is not None
    title = f"live_drift: the live database {mask_url(dsn)}"
    # connected first: a live database that cannot be reached is reported before anything runs
    try:
        conn = connect_live(dsn)
    except LiveError as exc:
        framework.report(CheckResult("failed", title, [str(exc)]))
        return
    try:
        require_migrations(request)
        parity: ParityChecks = request.getfixturevalue("schemaguard_parity")
        live = read_project_live(parity, dsn, conn=conn)
    except LiveError as exc:
        framework.report(CheckResult("failed", title, [str(exc)]))
        return
    except MigrationFailed as exc:
        framework.report(CheckResult("failed", title, exc.lines()))
        return
    finally:
        conn.close()  # read_project_live closed it already, unless it did not get there
    request.node.schemaguard_revision = drift_target(live, parity.history).revision
    metadata: MetaData | None = None
    models_error: str | None = None
    if settings.metadata or metadata_overridden(request.session):
        try:
            metadata = request.getfixturevalue("schemaguard_metadata")
        except SchemaguardError as exc:
            models_error = str(exc).splitlines()[0]
    result = check_drift(parity, live=live, metadata=metadata, dsn=dsn)
    if models_error is not None:
        result.outcome = "failed"
        result.lines.append(f"not compared with the schema the models build: {models_error}")
    framework.report(result)
