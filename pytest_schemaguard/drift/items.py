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
from pytest_schemaguard.drift.check import check_drift, drift_target
from pytest_schemaguard.drift.live import LiveError, read_live
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.runner import CheckResult
from pytest_schemaguard.parity.items import metadata_overridden, require_migrations
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
    try:
        live = read_live(dsn)
    except LiveError as exc:
        framework.report(
            CheckResult("failed", f"live_drift: the live database {mask_url(dsn)}", [str(exc)])
        )
        return
    require_migrations(request)
    parity: ParityChecks = request.getfixturevalue("schemaguard_parity")
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
