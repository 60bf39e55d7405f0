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


def stopped_by(exc: Exception, checks: str) -> tuple[list[str], str]:
    """The lines and the one-line cause of a failure that stops every one of ``checks``: a
    :class:`SchemaguardError` as its message; anything else raised by this plugin's own code
    (a bug, or a schema it cannot read) with its traceback, to be reported."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, SchemaguardError):
        return str(exc).splitlines(), first
    import traceback

    summary = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    lines = [
        f"pytest-schemaguard failed while running the {checks}: its own code raised "
        f"{summary}; this is a bug of pytest-schemaguard: please "
        "report it with the traceback below",
        *"".join(traceback.format_exception(exc)).rstrip().splitlines(),
    ]
    return [mask_url(line) for line in lines], mask_url(f"internal error: {summary}")
