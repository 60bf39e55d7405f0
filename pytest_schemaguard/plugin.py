"""pytest hooks and fixtures of pytest-schemaguard (thin; logic lives elsewhere)."""

from __future__ import annotations
