"""Shared test helpers: one PostgreSQL for the whole suite, handed to inner pytest runs."""

from __future__ import annotations

import pytest

# Imported once for the whole suite: when SQLAlchemy is first imported inside a pytester test,
# pytester unloads its modules afterwards and the next in-process use fails.
import sqlalchemy  # noqa: F401

from pytest_schemaguard.plugin import SETTINGS_KEY, describe_server
from pytest_schemaguard.server import PostgresServer


def pytest_report_header(config: pytest.Config) -> str | None:
    """Name the suite's server even when no schemaguard option is given (the plugin's own
    header line names it otherwise)."""
    settings = config.stash[SETTINGS_KEY]
    if settings.enabled or settings.sources:
        return None
    return describe_server(config)


@pytest.fixture
def inner_dsn(schemaguard_postgres: PostgresServer) -> str:
    """The suite's server as a DSN, so inner runs create scratch databases there."""
    return schemaguard_postgres.url
