"""ORM parity: the schema the migrations build at head against the schema the models create.

Both sides end up in a real PostgreSQL database and are read back from its catalog, so the
server normalises types, defaults, CHECK expressions and index predicates the same way on both
sides.  Alembic's own ``compare_metadata`` runs on the migrated database too, and its
operations are reported alongside: users see what ``alembic check`` sees, and what it misses.

This module does not import pytest.
"""

from __future__ import annotations

import importlib
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.parity.migrated import snapshot_database
from pytest_schemaguard.snapshot.compare import Difference, IgnoreRules, compare
from pytest_schemaguard.snapshot.model import Snapshot

if TYPE_CHECKING:
    from sqlalchemy import MetaData

__all__ = [
    "MetadataError",
    "ModelsError",
    "OrmComparison",
    "alembic_view",
    "compare_orm",
    "create_models",
    "is_server_name",
    "load_metadata",
    "parity_ignore_rules",
    "split_differences",
]

MIGRATIONS = "migrations"
MODELS = "models"


class MetadataError(SchemaguardError):
    """The configured ``metadata`` cannot be imported or is not a ``MetaData``."""


class ModelsError(SchemaguardError):
    """The preamble SQL or ``create_all`` failed in the models' scratch database."""


# --------------------------------------------------------------------------- loading


def _on_path(root: Path) -> None:
    """Put ``root`` on ``sys.path`` (and keep it: models may import lazily)."""
    entry = str(root)
    if entry not in sys.path:
        sys.path.insert(0, entry)


def load_metadata(spec: str, root: Path, *, where: str = "metadata") -> MetaData:
    """Import ``package.module:attr.path`` (``root`` on ``sys.path``) and return the
    :class:`~sqlalchemy.MetaData` it names; :class:`MetadataError` with one message otherwise.

    ``where`` names the setting in messages.
    """
    from sqlalchemy import MetaData

    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise MetadataError(f"{where} = {spec!r} is not valid: expected 'package.module:attribute'")
    _on_path(root)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise MetadataError(
            f"{where} = {spec!r}: importing {module_name} failed: "
            f"{type(exc).__name__}: {exc}{_where_raised(exc, root)}"
        ) from None
    walked = module_name
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise MetadataError(f"{where} = {spec!r}: {walked} has no attribute {part!r}") from None
        walked = f"{walked}:{part}" if walked == module_name else f"{walked}.{part}"
    if not isinstance(target, MetaData):
        hint = (
            f"; did you mean {spec}.metadata?"
            if isinstance(getattr(target, "metadata", None), MetaData)
            else ""
        )
        what = (
            f"the class {target.__name__}"
            if isinstance(target, type)
            else f"a {type(target).__name__}"
        )
        raise MetadataError(f"{where} = {spec!r} is {what}, not a sqlalchemy MetaData{hint}")
    return target


def _where_raised(exc: BaseException, root: Path) -> str:
    """`` (at models.py:12)``: the innermost frame of the exception inside the project."""
    found = ""
    resolved = str(root.resolve())
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(resolved):
            found = f" (at {Path(frame.filename).relative_to(resolved)}:{frame.lineno})"
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        found = f" (at {exc.filename}:{exc.lineno})"
    return found


# --------------------------------------------------------------------------- the models' side


def create_models(url: str, metadata: MetaData, preamble_sql: Sequence[str] = ()) -> None:
    """Run ``preamble_sql``, create the schemas the metadata names, then ``create_all``.

    :class:`ModelsError` names the statement that failed and the server's message.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    from sqlalchemy.pool import NullPool
    from sqlalchemy.schema import CreateSchema

    schemas = sorted({t.schema for t in metadata.tables.values() if t.schema})
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in preamble_sql:
                try:
                    with conn.begin_nested():
                        conn.execute(text(statement))
                except DBAPIError as exc:
                    raise ModelsError(
                        f"preamble_sql statement failed: {statement}\n    {_server_message(exc)}"
                    ) from None
            for schema in schemas:
                conn.execute(CreateSchema(schema, if_not_exists=True))
            try:
                metadata.create_all(conn)
            except DBAPIError as exc:
                statement = " ".join((exc.statement or "").split())
                raise ModelsError(
                    "creating the models (metadata.create_all) failed:\n"
                    f"    {_server_message(exc)}\n"
                    f"    SQL: {statement[:300]}" + _preamble_hint(exc, preamble_sql)
                ) from None
            except SQLAlchemyError as exc:
                raise ModelsError(
                    f"creating the models (metadata.create_all) failed: {type(exc).__name__}: {exc}"
                ) from None
    finally:
        engine.dispose()


def _server_message(exc: Any) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {first[0] if first else ''}"


def _preamble_hint(exc: Any, preamble_sql: Sequence[str]) -> str:
    message = str(getattr(exc, "orig", exc))
    match = re.search(r'type "([^"]+)" does not exist', message)
    if match and not preamble_sql:
        return (
            f"\n    (type {match.group(1)} comes from an extension? add "
            f'preamble_sql = ["CREATE EXTENSION IF NOT EXISTS ..."] to [tool.schemaguard])'
        )
    return ""


# --------------------------------------------------------------------------- comparing

# PostgreSQL's own names for constraints, indexes and sequences nobody named:
# <table>_<columns>_<suffix>, with a number appended when the name was taken.
_SERVER_SUFFIXES = ("pkey", "key", "fkey", "check", "excl", "idx", "seq", "not_null")


def is_server_name(name: str, table: str | None) -> bool:
    """True when ``name`` looks like a name PostgreSQL chose itself (``tasks_owner_id_fkey``,
    ``tasks_pkey``, ``tasks_id_seq``, ``time_entries_owner_id_idx1``)."""
    local = name.rpartition(".")[2]
    suffix = "|".join(_SERVER_SUFFIXES)
    if not re.fullmatch(rf"[a-z0-9_$]+_(?:{suffix})\d*", local):
        return False
    if table is None:
        return True
    table_local = table.rpartition(".")[2]
    # PostgreSQL truncates long table and column names to fit 63 bytes
    return local.startswith(table_local[: min(len(table_local), 20)])


def parity_ignore_rules(patterns: Sequence[str]) -> IgnoreRules:
    """The configured ``ignore`` patterns; :class:`SchemaguardError` for a bad one."""
    try:
        return IgnoreRules.from_patterns(patterns)
    except ValueError as exc:
        raise SchemaguardError(f"ignore: {exc}") from None


def split_differences(
    differences: Sequence[Difference], *, column_order: str = "warn"
) -> tuple[list[Difference], list[Difference]]:
    """(failures, warnings) of a parity comparison.

    Defaults: a difference only in the name of a constraint, index or sequence is dropped when
    one of the two names is a name PostgreSQL invented (nobody chose it, and nothing in the
    code can depend on it); a name-only difference between two chosen names fails (a later
    migration that drops it by name would break).  Column order follows ``column_order``.
    """
    failures: list[Difference] = []
    warnings: list[Difference] = []
    for d in differences:
        if d.category == "name":
            table = d.parent if d.parent_kind == "table" else None
            names = [str(v) for v in (d.before, d.after) if v]
            if any(is_server_name(n, table) for n in names):
                continue
            failures.append(d)
        elif d.category == "column_order":
            if column_order == "fail":
                failures.append(d)
            elif column_order == "warn":
                warnings.append(d)
        else:
            failures.append(d)
    return failures, warnings


@dataclass
class OrmComparison:
    """The outcome of comparing the migrated schema with the models."""

    failures: list[Difference] = field(default_factory=list)
    warnings: list[Difference] = field(default_factory=list)
    alembic: list[str] = field(default_factory=list)
    """Alembic autogenerate's operations, one line each."""
    alembic_error: str | None = None
    """Why Alembic's comparison could not run, if it could not."""
    models: Snapshot | None = None


def compare_orm(
    migrated: Snapshot,
    models_url: str,
    metadata: MetaData,
    *,
    migrated_url: str,
    preamble_sql: Sequence[str] = (),
    ignore: Sequence[str] = (),
    column_order: str = "warn",
    version_table: str = "alembic_version",
) -> OrmComparison:
    """Create ``metadata`` in the empty database at ``models_url``, snapshot it, and compare it
    with ``migrated`` (the schema of the database at ``migrated_url``); also run Alembic's
    ``compare_metadata`` on the migrated database."""
    rules = parity_ignore_rules(ignore)
    create_models(models_url, metadata, preamble_sql)
    models = snapshot_database(models_url, exclude_tables=(version_table,))
    differences = compare(migrated, models, left_label=MIGRATIONS, right_label=MODELS, ignore=rules)
    failures, warnings = split_differences(differences, column_order=column_order)
    result = OrmComparison(failures, warnings, models=models)
    try:
        result.alembic = alembic_view(
            migrated_url, metadata, version_table=version_table, ignore=rules
        )
    except Exception as exc:
        result.alembic_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return result


# --------------------------------------------------------------------------- alembic's view


def alembic_view(
    url: str,
    metadata: MetaData,
    *,
    version_table: str = "alembic_version",
    ignore: IgnoreRules | None = None,
) -> list[str]:
    """Alembic autogenerate's operations to bring the database at ``url`` to ``metadata``,
    one line each (``modify_type public.tasks.owner_id: INTEGER → UUID``).

    Tables, columns, indexes and constraints that ``ignore`` patterns name are left out of
    Alembic's comparison (its ``include_object`` hook), as they are out of the catalog's."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    schemas = {t.schema for t in metadata.tables.values() if t.schema}
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_schemas": bool(schemas),
                    "version_table": version_table,
                    "include_name": _include_name(schemas),
                    "include_object": _include_object(ignore or IgnoreRules()),
                },
            )
            diffs = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    lines: list[str] = []
    for diff in diffs:
        for item in diff if isinstance(diff, list) else [diff]:
            lines.append(_render_op(item, engine.dialect))
    return lines


def _include_name(schemas: set[str]) -> Any:
    wanted: set[str | None] = {*schemas, None, "public"}

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name in wanted
        return True

    return include_name


# Alembic's object types → the kinds ignore patterns name.
_ALEMBIC_KINDS = {
    "table": "table",
    "column": "column",
    "index": "index",
    "unique_constraint": "constraint",
    "foreign_key_constraint": "constraint",
}


def _include_object(rules: IgnoreRules) -> Any:
    """Alembic's ``include_object`` hook: False for what ``rules`` ignore, matched as the
    catalog comparison names it (``table:public.audit_log``, ``column:public.tasks.legacy_id``,
    ``index:public.tasks.ix_x``; ignoring a table ignores everything on it)."""

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        kind = _ALEMBIC_KINDS.get(type_)
        if not rules or kind is None or name is None:
            return True
        if kind == "table":
            qualified, parent = _qualified(getattr(obj, "schema", None), name), None
        else:
            table = getattr(obj, "table", None)
            if table is None:
                return True
            parent = _table_name(table)
            qualified = f"{parent}.{name}"
        probe = Difference(
            kind=kind,
            name=qualified,
            attribute=None,
            before=None,
            after=None,
            category="only_left",
            message="",
            parent=parent,
            parent_kind="table" if parent else None,
        )
        return not rules.ignores(probe)

    return include_object


def _qualified(schema: str | None, *names: str | None) -> str:
    return ".".join(n for n in (schema or "public", *names) if n)


def _table_name(table: Any) -> str:
    return _qualified(getattr(table, "schema", None), getattr(table, "name", "?"))


def _render_op(op: Any, dialect: Any) -> str:
    """One Alembic diff tuple as a line."""
    if not isinstance(op, tuple) or not op:
        return repr(op)
    kind = op[0]
    if kind in ("add_table", "remove_table"):
        return f"{kind} {_table_name(op[1])}"
    if kind in ("add_column", "remove_column"):
        return f"{kind} {_qualified(op[1], op[2], op[3].name)}"
    if kind in ("add_index", "remove_index"):
        index = op[1]
        cols = ", ".join(str(getattr(e, "name", e)) for e in index.expressions)
        unique = "unique " if index.unique else ""
        return f"{kind} {index.name} ({unique}on {_table_name(index.table)} ({cols}))"
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint = op[1]
        what = type(constraint).__name__
        cols = ", ".join(c.name for c in getattr(constraint, "columns", ()))
        return (
            f"{kind} {constraint.name or '(unnamed)'} ({what} on {_table_name(constraint.table)}"
            + (f" ({cols}))" if cols else ")")
        )
    if kind.startswith("modify_") and len(op) == 7:
        _, schema, table, column, _info, old, new = op
        old_text, new_text = _value(old, dialect), _value(new, dialect)
        return f"{kind} {_qualified(schema, table, column)}: {old_text} → {new_text}"
    if kind in ("add_table_comment", "remove_table_comment"):
        return f"{kind} {_table_name(op[1])}"
    return f"{kind} " + " ".join(_value(x, dialect) for x in op[1:])


def _value(value: Any, dialect: Any) -> str:
    from sqlalchemy.types import TypeEngine

    if value is None:
        return "(none)"
    if isinstance(value, TypeEngine):
        try:
            return str(value.compile(dialect=dialect))
        except Exception:  # a type the dialect cannot render: show it as SQLAlchemy does
            return str(value)
    arg = getattr(value, "arg", None)  # a server default
    if arg is not None:
        return str(getattr(arg, "text", arg))
    return " ".join(str(value).split())
