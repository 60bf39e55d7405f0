"""The keys under which the plugin keeps its per-run objects in ``config.stash`` (a module of
its own, so that the plugin and the item framework share them without importing each other)."""

from __future__ import annotations

import pytest

from pytest_schemaguard.config import Settings

SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
"""The resolved settings of the run (set by the plugin at configure time)."""

__all__ = ["SETTINGS_KEY"]
