"""What builds the application template, and its content hash: read from the files alone.

Nothing here imports SQLAlchemy or Alembic, so that a warm start (the template already built)
costs only reading and hashing a few files.
"""

from __future__ import annotations

import configparser
import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pytest_schemaguard.config import Settings
from pytest_schemaguard.errors import SchemaguardError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

FORMAT = "1"
"""Bumped when the way a template is built changes: every template is rebuilt."""

TEMPLATE_PREFIX = "schemaguard_tpl_"


class TemplateSourceError(SchemaguardError):
    """Neither an Alembic project nor ``metadata`` to build the application template from."""


@dataclass(frozen=True)
class Source:
    """Where the schema at head comes from: an Alembic project, or ``metadata.create_all``."""

    kind: str  # "alembic" | "metadata"
    config_path: Path | None
    """The Alembic configuration file (None for ``metadata``)."""
    digest: str
    """Content hash (16 hex digits) of the files and settings that build the template."""
    project_key: str
    """Names the project (8 hex digits), so one project's template never replaces another's."""
    files: int
    """How many files went into the hash."""
    origin: Path
    """The file or directory that names the project (its configuration, or the root)."""

    @property
    def template_name(self) -> str:
        return f"{self.stem}{self.digest}"

    @property
    def stem(self) -> str:
        """The name every template of this project starts with (older ones are replaced)."""
        return f"{TEMPLATE_PREFIX}{self.project_key}_"

    def describe(self) -> str:
        if self.kind == "metadata":
            return "metadata.create_all"
        return "the migrations at head"


def locate(settings: Settings) -> Source:
    """The source of the application template of this project, with its content hash."""
    config = _alembic_config(settings)
    if config is not None:
        return _alembic_source(settings, config)
    if settings.metadata:
        return _metadata_source(settings)
    raise TemplateSourceError(
        "schemaguard_migrated_database needs the schema at head: no Alembic project was found "
        f"(no alembic.ini with a script_location, nor [tool.alembic] in pyproject.toml, in "
        f"{settings.root}) and no metadata is configured; set alembic_config = "
        "'path/to/alembic.ini' or metadata = 'package.module:Base.metadata' in "
        "[tool.schemaguard]"
    )


def _alembic_config(settings: Settings) -> Path | None:
    if settings.alembic_config:
        return settings.path(settings.alembic_config)
    ini = settings.root / "alembic.ini"
    if _ini_section(ini).get("script_location"):
        return ini
    pyproject = settings.root / "pyproject.toml"
    if _toml_section(pyproject).get("script_location"):
        return pyproject
    return None


def _ini_section(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        if not parser.read(path, encoding="utf-8") or not parser.has_section("alembic"):
            return {}
    except configparser.Error:
        return {}
    return {key: value.strip() for key, value in parser.items("alembic")}


def _toml_section(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            table = tomllib.load(f).get("tool", {}).get("alembic")
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return table if isinstance(table, dict) else {}


def _here(value: str, directory: Path) -> str:
    return value.replace("%(here)s", str(directory))


def _script_dirs(config: Path) -> list[Path]:
    """The script location (env.py and versions/) and any further version locations."""
    if config.suffix == ".toml":
        section: dict[str, object] = _toml_section(config)
    else:
        section = dict(_ini_section(config))
        beside = _toml_section(config.parent / "pyproject.toml")
        for key, value in beside.items():
            section.setdefault(key, value)
    location = str(section.get("script_location") or "")
    dirs: list[Path] = []
    if location:
        location = _here(location, config.parent)
        path = Path(location)
        if ":" in location and not path.exists():  # package:directory
            package, _, sub = location.partition(":")
            spec = importlib.util.find_spec(package)
            if spec is not None and spec.submodule_search_locations:
                dirs.append(Path(next(iter(spec.submodule_search_locations))) / sub)
        else:
            dirs.append(path if path.is_absolute() else config.parent / path)
    versions = section.get("version_locations")
    if isinstance(versions, list):
        entries = [str(v) for v in versions]
    elif isinstance(versions, str):
        entries = versions.replace(",", " ").replace(os.pathsep, " ").split()
    else:
        entries = []
    for entry in entries:
        path = Path(_here(entry, config.parent))
        dirs.append(path if path.is_absolute() else config.parent / path)
    return dirs


def _python_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.rglob("*.py") if "__pycache__" not in p.parts and p.is_file()
    )


def _settings_part(settings: Settings, keys: tuple[str, ...]) -> bytes:
    values = {key: getattr(settings, key) for key in keys}
    return json.dumps(values, sort_keys=True, default=str).encode()


def _digest(parts: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256(FORMAT.encode())
    for name, data in parts:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def _alembic_source(settings: Settings, config: Path) -> Source:
    config = config.resolve()
    parts: list[tuple[str, bytes]] = []
    try:
        parts.append(("config", config.read_bytes()))
    except OSError:
        parts.append(("config", b""))
    if config.suffix != ".toml":
        beside = _toml_section(config.parent / "pyproject.toml")
        parts.append(("tool.alembic", json.dumps(beside, sort_keys=True, default=str).encode()))
    seen: set[Path] = set()
    for directory in _script_dirs(config):
        for path in _python_files(directory):
            if path in seen:
                continue
            seen.add(path)
            parts.append((os.path.relpath(path, config.parent), path.read_bytes()))
    for hook in (settings.bootstrap, settings.env_context):  # the hooks' own code
        for path in _module_files(hook.partition(":")[0], settings.root) if hook else []:
            if path not in seen:
                seen.add(path)
                parts.append((os.path.relpath(path, config.parent), path.read_bytes()))
    parts.append(
        (
            "settings",
            _settings_part(
                settings, ("driver", "bootstrap", "start", "database_url_env", "env_context")
            ),
        )
    )
    key = hashlib.sha256(str(config).encode()).hexdigest()[:8]
    return Source("alembic", config, _digest(parts), key, len(seen), config)


def _metadata_source(settings: Settings) -> Source:
    assert settings.metadata is not None
    module = settings.metadata.partition(":")[0]
    files = _module_files(module, settings.root)
    parts = [(os.path.relpath(p, settings.root), p.read_bytes()) for p in files]
    parts.append(("settings", _settings_part(settings, ("metadata", "preamble_sql"))))
    key = hashlib.sha256(f"{settings.root.resolve()}|{settings.metadata}".encode()).hexdigest()
    return Source("metadata", None, _digest(parts), key[:8], len(files), settings.root.resolve())


def _module_files(module: str, root: Path) -> list[Path]:
    """The source files of the models module (all of its package when it is a package's
    ``__init__``); found without importing it where it sits under the project root."""
    for base in (root, root / "src"):
        relative = base / Path(*module.split("."))
        candidates = [relative.with_suffix(".py"), relative / "__init__.py"]
        for candidate in candidates:
            if candidate.is_file():
                return _with_package(candidate)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and os.path.isfile(spec.origin):
        return _with_package(Path(spec.origin))
    return []


def _with_package(path: Path) -> list[Path]:
    if path.name == "__init__.py":
        return _python_files(path.parent)
    return [path]
