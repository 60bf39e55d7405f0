"""Exceptions of pytest-schemaguard. Each message says what was wrong and how to fix it."""

from __future__ import annotations

from pytest_schemaguard.urls import mask_url


class SchemaguardError(Exception):
    """Base class: a problem the user can act on; shown as one message, without a traceback.

    Its text never shows a password: a URL or ``password=`` in the message is masked, however
    the message was built.
    """

    def __str__(self) -> str:
        return mask_url(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigError(SchemaguardError):
    """A setting is unknown or has a bad value."""


class ServerError(SchemaguardError):
    """No usable PostgreSQL: binaries missing, start failed, DSN refused, and so on."""
