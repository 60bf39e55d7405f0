"""Database URLs: building them, and masking passwords in anything that is shown."""

from __future__ import annotations

import re
from typing import Any

_PASSWORD_IN_URL = re.compile(
    # greedy up to the last "@" of the URL: a password may hold an unescaped "@"
    r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<pw>[^\s'\"]*)(?P<at>@)",
    re.I,
)
_PASSWORD_IN_CONNINFO = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.I
)


# The placeholder of the examples in messages (``postgresql://user:password@host/db``) is no secret.
_PLACEHOLDER = "://user:"


def _masked_url(match: re.Match[str]) -> str:
    if match["head"].endswith(_PLACEHOLDER) and match["pw"] == "password":
        return match[0]
    return f"{match['head']}***{match['at']}"


def mask_url(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every password replaced by ``***``.

    Handles URLs (``scheme://user:password@host``), libpq conninfo (``password=…``) and any
    known secret given explicitly (for messages that quote a password elsewhere, e.g. a
    server's error text).
    """
    masked = _PASSWORD_IN_URL.sub(_masked_url, text)
    masked = _PASSWORD_IN_CONNINFO.sub(r"\g<head>***", masked)
    for secret in secrets:
        if secret:
            masked = masked.replace(secret, "***")
    return masked


def named_host_and_port(url: Any) -> tuple[str | None, int | None]:
    """The server a parsed SQLAlchemy URL names: its host (a name, an address, or the directory
    of a Unix socket) and port, from the URL's authority or, as libpq also takes them, from its
    ``host=`` and ``port=`` query parameters (``postgresql://user@/db?host=/var/run/postgresql``);
    None for what it does not name.  A port that is not a number raises ``ValueError``."""

    def first(value: Any) -> str | None:
        if isinstance(value, tuple):  # a parameter given twice (several hosts): the first
            value = value[0] if value else None
        return str(value) if value else None

    port = url.port or first(url.query.get("port"))
    return url.host or first(url.query.get("host")), int(port) if port else None


def host_and_port(url: Any) -> tuple[str, int]:
    """:func:`named_host_and_port`, ``localhost:5432`` for what the URL does not name."""
    host, port = named_host_and_port(url)
    return host or "localhost", port or 5432
