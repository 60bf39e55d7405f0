"""The keys under which the plugin keeps its per-run objects in ``config.stash`` (a module of
its own, so that the plugin and the item framework share them without importing each other)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_schemaguard.config import Settings

if TYPE_CHECKING:
    from pytest_schemaguard.session import ServerManager

SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
"""The resolved settings of the run (set by the plugin at configure time)."""

MANAGER_KEY: pytest.StashKey[ServerManager] = pytest.StashKey()
"""The server manager of this process (set by the plugin at configure time)."""

APP_TEMPLATES_KEY: pytest.StashKey[Any] = pytest.StashKey()
"""The application-test templates of this process (a databases.templates.AppTemplates)."""

__all__ = ["APP_TEMPLATES_KEY", "MANAGER_KEY", "SETTINGS_KEY"]
