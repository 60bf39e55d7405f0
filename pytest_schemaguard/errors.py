"""Exceptions of pytest-schemaguard. Each message says what was wrong and how to fix it."""

from __future__ import annotations


class SchemaguardError(Exception):
    """Base class: a problem the user can act on; shown as one message, without a traceback."""


class ConfigError(SchemaguardError):
    """A setting is unknown or has a bad value."""


class ServerError(SchemaguardError):
    """No usable PostgreSQL: binaries missing, start failed, DSN refused, and so on."""
