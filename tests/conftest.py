"""Shared test helpers: one PostgreSQL for the whole suite, handed to inner pytest runs."""

from __future__ import annotations

import compileall
import functools
from pathlib import Path

import pytest

# Imported once for the whole suite: when SQLAlchemy is first imported inside a pytester test,
# pytester unloads its modules afterwards and the next in-process use fails.
import sqlalchemy  # noqa: F401
from forkserver import forked_popen

import pytest_schemaguard
from pytest_schemaguard.plugin import SETTINGS_KEY, describe_server
from pytest_schemaguard.server import PostgresServer


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package once: with PYTHONDONTWRITEBYTECODE set (as on some CI machines) an
    editable install has no bytecode, and every inner pytest run would compile it again."""
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without xdist
        compileall.compile_dir(Path(pytest_schemaguard.__file__).parent, quiet=1)


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


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester whose ``runpytest_subprocess`` runs fork from a process that has imported the
    inner runs' dependencies once (see :mod:`forkserver`): still a new process per run."""
    monkeypatch.setattr(pytester, "popen", functools.partial(forked_popen, pytester.popen))
    return pytester
