"""ORM parity: the schema the migrations build at head against the schema the models create.

Both sides end up in a real PostgreSQL database and are read back from its catalog, so the
server normalises types, defaults, CHECK expressions and index predicates the same way on both
sides.  Alembic's own ``compare_metadata`` runs on the migrated database too, and its
operations are reported alongside: users see what ``alembic check`` sees, and what it misses.

This module does not import pytest.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_schemaguard.dbapi import as_written, execute_as_is
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.hooks import HookError, import_hook, where_raised
from pytest_schemaguard.parity.migrated import snapshot_database
from pytest_schemaguard.parity.sources import locate_models, remember_sources
from pytest_schemaguard.snapshot.compare import Difference, IgnoreRules, compare
from pytest_schemaguard.snapshot.model import Snapshot
from pytest_schemaguard.timeouts import Watchdog, backend_pid, conninfo_of

if TYPE_CHECKING:
    from sqlalchemy import MetaData

__all__ = [
    "MetadataError",
    "ModelsError",
    "OrmComparison",
    "alembic_view",
    "capture_metadata",
    "compare_orm",
    "copy_metadata",
    "create_models",
    "is_server_name",
    "load_metadata",
    "parity_ignore_rules",
    "split_differences",
    "without_empty_schema",
]

MIGRATIONS = "migrations"
MODELS = "models"


class MetadataError(SchemaguardError):
    """The configured ``metadata`` cannot be imported or is not a ``MetaData``."""


class ModelsError(SchemaguardError):
    """The preamble SQL or ``create_all`` failed in the models' scratch database."""


# --------------------------------------------------------------------------- loading


def load_metadata(spec: str, root: Path, *, where: str = "metadata") -> MetaData:
    """The :class:`~sqlalchemy.MetaData` that ``package.module:attr.path`` names (imported with
    ``root`` first on ``sys.path``), or that the function it names returns when called with no
    arguments (for projects that must import their model modules first);
    :class:`MetadataError` with one message otherwise.

    ``where`` names the setting in messages.
    """
    from sqlalchemy import MetaData

    try:
        target = import_hook(spec, root, where=where)
    except HookError as exc:
        raise MetadataError(str(exc)) from None
    if callable(target) and not isinstance(target, (type, MetaData)):
        try:
            target = target()
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise MetadataError(
                f"{where} = {spec!r}: calling it failed: "
                f"{type(exc).__name__}: {first}{where_raised(exc, root)}"
            ) from None
        if not isinstance(target, MetaData):
            raise MetadataError(
                f"{where} = {spec!r} returned {_describe(target)}, not a sqlalchemy MetaData"
                + (
                    f"; return {_name(target)}.metadata"
                    if isinstance(getattr(target, "metadata", None), MetaData)
                    else ""
                )
            )
        return target
    if not isinstance(target, MetaData):
        hint = (
            f"; did you mean {spec}.metadata?"
            if isinstance(getattr(target, "metadata", None), MetaData)
            else ""
        )
        raise MetadataError(
            f"{where} = {spec!r} is {_describe(target)}, not a sqlalchemy MetaData{hint}"
        )
    return target


def _describe(target: Any) -> str:
    if isinstance(target, type):
        return f"the class {target.__name__}"
    return "None" if target is None else f"a {type(target).__name__}"


def _name(target: Any) -> str:
    return target.__name__ if isinstance(target, type) else type(target).__name__


def copy_metadata(metadata: MetaData) -> MetaData:
    """A faithful, independent copy of ``metadata``: its tables (columns, constraints, indexes,
    comments, DDL events), its free-standing sequences and its own DDL events.

    Alembic imports every revision module in this process, and a revision that builds
    ``sa.CheckConstraint(Model.col.in_(...), name="x")`` at import attaches that constraint to
    the model's table.  Comparing a copy taken before the revisions are read compares the models
    as the user wrote them.
    """
    from sqlalchemy import MetaData

    copy = MetaData(
        schema=metadata.schema,
        naming_convention=metadata.naming_convention,
        info=dict(metadata.info),
    )
    for table in metadata.tables.values():
        # to_metadata carries over only the listeners registered with propagate=True
        table.to_metadata(copy).dispatch._update(table.dispatch, only_propagate=False)
    for sequence in metadata._sequences.values():
        if sequence._key not in copy._sequences:
            sequence._copy()._set_metadata(copy)
    copy.dispatch._update(metadata.dispatch, only_propagate=False)
    return copy


def capture_metadata(spec: str, root: Path, *, where: str = "metadata") -> MetaData:
    """:func:`load_metadata`, copied (:func:`copy_metadata`): call it before any revision
    module is imported.

    Where each model object is written (:func:`~pytest_schemaguard.parity.sources.sources_of`)
    is read from the original now and kept with the copy: no mapper knows the copy's tables.
    """
    original = load_metadata(spec, root, where=where)
    copy = copy_metadata(original)
    remember_sources(copy, locate_models(original, root))
    return copy


# --------------------------------------------------------------------------- the models' side


def create_models(
    url: str, metadata: MetaData, preamble_sql: Sequence[str] = (), *, step_timeout: float = 0
) -> None:
    """Run ``preamble_sql``, create the schemas the metadata names, then ``create_all``.

    :class:`ModelsError` names the model object that could not be created (when it can be
    found: the table, index or constraint), the server's message and the statement. A
    statement still running after ``step_timeout`` seconds (0: no limit) is cancelled on the
    server and the error says so.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            pid = backend_pid(conn) if step_timeout > 0 else None
            with Watchdog(step_timeout, conninfo_of(url), pid=pid) as watch:
                try:
                    _prepare(conn, metadata, preamble_sql)
                    metadata.create_all(conn)
                    conn.commit()
                    return
                except DBAPIError as exc:
                    failed = exc
                    conn.rollback()
                except SQLAlchemyError as exc:
                    raise ModelsError(
                        "creating the models (metadata.create_all) failed: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
                except ModelsError as exc:
                    if watch.fired:
                        raise ModelsError(watch.explain(str(exc))) from None
                    raise
            if watch.fired:  # the same statement would hang again: no search for the culprit
                statement = _statement(failed, engine)
                raise ModelsError(
                    "creating the models (metadata.create_all) failed: "
                    + watch.explain(f"    {_server_message(failed)}\n    SQL: {statement[:300]}")
                )
        # rolled back: find the object on a clean slate
        culprit = _culprit(engine, metadata, preamble_sql, failed)
    finally:
        engine.dispose()
    statement = _statement(failed, engine)
    at = f" at {culprit[0]}" if culprit else ""
    message = culprit[1] if culprit else _server_message(failed)
    raise ModelsError(
        f"creating the models (metadata.create_all) failed{at}:\n"
        f"    {message}\n"
        f"    SQL: {statement[:300]}" + _preamble_hint(failed, preamble_sql)
    ) from None


def _statement(exc: Any, engine: Any) -> str:
    """The statement of a failed ``create_all`` as SQLAlchemy wrote it, on one line."""
    return " ".join(as_written(exc.statement or "", engine.dialect.driver).split())


def _prepare(conn: Any, metadata: MetaData, preamble_sql: Sequence[str]) -> None:
    """The preamble SQL, then the schemas the metadata's tables live in."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.schema import CreateSchema

    for statement in preamble_sql:
        try:
            with conn.begin_nested():
                execute_as_is(conn, statement)
        except DBAPIError as exc:
            raise ModelsError(
                f"preamble_sql statement failed: {statement}\n    {_server_message(exc)}"
            ) from None
    for schema in sorted({t.schema for t in metadata.tables.values() if t.schema}):
        conn.execute(CreateSchema(schema, if_not_exists=True))


def _culprit(engine: Any, metadata: MetaData, preamble_sql: Sequence[str], exc: Any) -> Any:
    """``(object, server message)`` for the model object whose DDL failed, or ``None``.

    The failed statement names a table (``CREATE TABLE``) or an index.  For a table, its
    foreign keys are the usual suspects (one to a column without a unique constraint): the
    table is created again without them, after the tables before it, and each foreign key is
    then added on its own; the ones the server refuses are named.  Nothing is kept.
    """
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.schema import CreateIndex, CreateTable

    failed = " ".join((exc.statement or "").split())
    if not failed:
        return None
    dialect = engine.dialect

    def sql(element: Any) -> str:
        return " ".join(str(element.compile(dialect=dialect)).split())

    tables = metadata.sorted_tables
    for position, table in enumerate(tables):
        for index in table.indexes:
            if sql(CreateIndex(index)) == failed:
                return f"index {_table_name(table)}.{index.name}", _server_message(exc)
        for fk in table.foreign_key_constraints:
            # added after the tables (use_alter, or tables that refer to each other)
            if fk.name and sql(_add_constraint(fk)) == failed:
                return f"foreign key {_fk_name(table, fk)}", _server_message(exc)
        if sql(CreateTable(table)) != failed:
            continue
        refused: list[str] = []
        try:
            with engine.connect() as conn:
                try:
                    _prepare(conn, metadata, preamble_sql)
                    metadata.create_all(conn, tables=tables[:position])
                    with conn.begin_nested():
                        conn.execute(CreateTable(table, include_foreign_key_constraints=[]))
                    for fk in sorted(
                        table.foreign_key_constraints, key=lambda c: str(c.name or "")
                    ):
                        try:
                            with conn.begin_nested():
                                conn.execute(_add_constraint(fk))
                        except DBAPIError as fk_exc:
                            refused.append(
                                f"foreign key {_fk_name(table, fk)}: {_server_message(fk_exc)}"
                            )
                finally:
                    conn.rollback()
        except DBAPIError:
            pass  # the table fails without its foreign keys too: name the table
        if len(refused) == 1:
            what, _, message = refused[0].partition(": ")
            return what, message
        if refused:
            return f"table {_table_name(table)}", "; ".join(refused)
        return f"table {_table_name(table)}", _server_message(exc)
    return None


def _add_constraint(constraint: Any) -> Any:
    """``AddConstraint(constraint)`` that leaves the constraint as it was: the construct
    otherwise marks it as never again part of a ``CREATE TABLE``."""
    from sqlalchemy.schema import AddConstraint

    rule = constraint._create_rule
    try:
        return AddConstraint(constraint)
    finally:
        constraint._create_rule = rule


def _fk_name(table: Any, fk: Any) -> str:
    cols = ", ".join(c.name for c in fk.columns)
    target = fk.elements[0].column.table if fk.elements else None
    refs = ", ".join(e.column.name for e in fk.elements)
    name = f"{_table_name(table)}.{fk.name}" if fk.name else _table_name(table)
    to = _table_name(target) if target is not None else "?"
    return f"{name} ({cols}) → {to} ({refs})"


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
    models_error: ModelsError | None = None
    """Why the models could not be created (then only Alembic's view is there)."""


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
    ``compare_metadata`` on the migrated database, which needs no ``create_all``: when the
    models cannot be created, :attr:`OrmComparison.models_error` says why and Alembic's view
    is still there.

    ``version_table`` is Alembic's version table, ``schema.name`` when env.py puts it in a
    schema of its own (``version_table_schema``): neither it nor a schema that holds nothing
    else is a difference.
    """
    rules = parity_ignore_rules(ignore)
    version_schema, _, version_name = version_table.rpartition(".")
    result = OrmComparison()
    try:
        create_models(models_url, metadata, preamble_sql)
    except ModelsError as exc:
        result.models_error = exc
    else:
        models = snapshot_database(models_url, exclude_tables=(version_name,))
        if version_schema:
            migrated = without_empty_schema(migrated, version_schema)
            models = without_empty_schema(models, version_schema)
        differences = compare(
            migrated, models, left_label=MIGRATIONS, right_label=MODELS, ignore=rules
        )
        result.failures, result.warnings = split_differences(differences, column_order=column_order)
        result.models = models
    try:
        result.alembic = alembic_view(
            migrated_url,
            metadata,
            version_table=version_name,
            # Alembic names the default schema None
            version_table_schema=None if version_schema in ("", "public") else version_schema,
            ignore=rules,
        )
    except Exception as exc:
        result.alembic_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return result


def without_empty_schema(snapshot: Snapshot, schema: str) -> Snapshot:
    """``snapshot`` without the schema ``schema`` when no object in the snapshot lives in it
    (the schema env.py made for Alembic's version table, which the snapshot leaves out)."""
    if schema == "public" or not any(s.name == schema for s in snapshot.schemas):
        return snapshot
    for f in dataclasses.fields(snapshot):
        value = getattr(snapshot, f.name)
        if (
            f.name != "schemas"
            and isinstance(value, tuple)
            and any(getattr(obj, "schema", None) == schema for obj in value)
        ):
            return snapshot
    kept = tuple(s for s in snapshot.schemas if s.name != schema)
    return dataclasses.replace(snapshot, schemas=kept)


# --------------------------------------------------------------------------- alembic's view


def alembic_view(
    url: str,
    metadata: MetaData,
    *,
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
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
                    "version_table_schema": version_table_schema,
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
