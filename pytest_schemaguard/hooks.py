"""The project's own code named in the configuration: ``package.module:attribute.path``.

``metadata``, ``bootstrap`` and ``env_context`` name something in the user's project.  They
all resolve the same way: the directory holding the configuration (``pyproject.toml`` or the
ini file, :attr:`~pytest_schemaguard.config.Settings.root`) goes first on ``sys.path``, the
module is imported, and the attribute path is walked.  A hook module next to
``pyproject.toml`` is therefore importable whatever the current directory is.

This module does not import pytest.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import Any

from pytest_schemaguard.errors import SchemaguardError

__all__ = ["HookError", "import_hook", "on_path", "where_raised"]


class HookError(SchemaguardError):
    """A configured hook cannot be imported; the message is one line naming the setting."""


def on_path(root: Path) -> None:
    """Put ``root`` first on ``sys.path`` (and keep it there: the project may import lazily)."""
    entry = str(root)
    if entry not in sys.path:
        sys.path.insert(0, entry)


def import_hook(spec: str, root: Path, *, where: str) -> Any:
    """Import ``package.module:attr.path`` with ``root`` on ``sys.path`` and return the object.

    ``where`` names the setting in messages (``[tool.schemaguard] metadata in pyproject.toml``).
    Raises :class:`HookError` with one line: a malformed value, the import's own error (with
    the project file and line it was raised at), or the attribute that is missing.
    """
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise HookError(f"{where} = {spec!r} is not valid: expected 'package.module:attribute'")
    on_path(root)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise HookError(
            f"{where} = {spec!r}: importing {module_name} failed: "
            f"{type(exc).__name__}: {_first_line(exc)}{where_raised(exc, root)}"
        ) from None
    walked = module_name
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HookError(f"{where} = {spec!r}: {walked} has no attribute {part!r}") from None
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    return target


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def where_raised(exc: BaseException, root: Path) -> str:
    """`` (at models.py:12)``: the innermost frame of the exception inside the project."""
    found = ""
    resolved = str(root.resolve())
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(resolved):
            found = f" (at {Path(frame.filename).relative_to(resolved)}:{frame.lineno})"
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        found = f" (at {exc.filename}:{exc.lineno})"
    return found
