"""The usual fix for what a ``downgrade()`` got wrong, one short line per object.

A round trip that does not restore the schema before the upgrade reports each object left
behind (or changed, or missing); :func:`downgrade_fix` says what ``downgrade()`` usually does
about that kind of object, in Alembic's terms (``op.drop_index(...)``, ``op.execute("DROP TYPE
...")``), so the reader can go straight to the revision's ``downgrade()`` and write it.

This module does not import pytest.
"""

from __future__ import annotations

import re
from typing import Any

from pytest_schemaguard.snapshot.compare import KIND_WORDS, Difference
from pytest_schemaguard.snapshot.model import DEFAULT_SCHEMA, Snapshot

__all__ = ["downgrade_fix"]

_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*\Z")

# Alembic's ``type_`` for op.drop_constraint (an exclusion constraint takes none)
_CONSTRAINT_TYPES = {
    "primary_key": "primary",
    "unique": "unique",
    "check": "check",
    "foreign_key": "foreignkey",
}


def _ident(name: str) -> str:
    """``name`` as SQL writes it: quoted unless it is a plain lower-case identifier."""
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


def _sql_name(schema: str, name: str) -> str:
    """``order_status`` in the default schema, ``billing.order_status`` elsewhere."""
    if schema == DEFAULT_SCHEMA:
        return _ident(name)
    return f"{_ident(schema)}.{_ident(name)}"


def _py(text: str) -> str:
    """``text`` as a Python string literal, double-quoted when it can be."""
    if '"' not in text and "\\" not in text:
        return f'"{text}"'
    return repr(text)


def _execute(sql: str) -> str:
    return f"op.execute({_py(sql)})"


def _schema_kw(schema: str) -> str:
    return "" if schema == DEFAULT_SCHEMA else f", schema={_py(schema)}"


def _split(qualified: str | None) -> tuple[str, str]:
    """``("public", "orders")`` from ``public.orders``."""
    schema, _, name = (qualified or "").partition(".")
    return (schema, name) if name else (DEFAULT_SCHEMA, schema)


def _member(diff: Difference) -> tuple[str, str, str]:
    """(schema, table, object name) of a column, index, constraint, trigger or policy."""
    schema, table = _split(diff.parent)
    prefix = f"{diff.parent}."
    name = diff.name[len(prefix) :] if diff.parent and diff.name.startswith(prefix) else diff.name
    return schema, table, name


def downgrade_fix(diff: Difference, before: Snapshot | None = None) -> str | None:
    """What ``downgrade()`` usually does about ``diff`` (a difference of the schema after the
    downgrade against the schema before the upgrade, ``before``), or None when there is no
    usual fix."""
    if diff.category == "only_right":
        return _left_behind(diff, diff.after)
    if diff.category == "only_left":
        word = KIND_WORDS.get(diff.kind, diff.kind)
        return f"recreate {word} {diff.name} as it was before the upgrade"
    if diff.category == "changed" and diff.kind == "column":
        return _column_changed(diff)
    if diff.category == "changed" and diff.kind == "enum" and diff.attribute == "labels":
        return _labels_changed(diff)
    if diff.category == "changed" and diff.kind in ("index", "constraint") and before is not None:
        return _recreated(diff, before)
    if diff.category == "name":
        return _renamed(diff)
    return None


def _labels_changed(diff: Difference) -> str | None:
    old, new = diff.before, diff.after
    if not isinstance(old, tuple) or not isinstance(new, tuple):
        return None
    schema, name = _split(diff.name)
    added = [label for label in new if label not in old]
    gone = [label for label in old if label not in new]
    if added:
        # ALTER TYPE ... DROP VALUE does not exist
        return (
            f"PostgreSQL cannot drop a value from an enum ({', '.join(added)}): rename the type, "
            f"create {_sql_name(schema, name)} again with the values it had before the upgrade, "
            f"alter each column that uses it to the new type (USING <column>::text::"
            f"{_sql_name(schema, name)}), then drop the renamed type; or list the revision in "
            "irreversible"
        )
    if gone:
        return "add the values back: " + " and ".join(
            _execute(f"ALTER TYPE {_sql_name(schema, name)} ADD VALUE {_quote(label)}")
            for label in gone
        )
    return None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _recreated(diff: Difference, before: Snapshot) -> str | None:
    """An index or constraint the downgrade left changed: drop it and create it again as it
    was before the upgrade (its definition then, as PostgreSQL prints it)."""
    schema, table, name = _member(diff)
    parent = before.get_table(f"{schema}.{table}")
    if parent is None:
        return None
    table_kw = f"{_py(table)}{_schema_kw(schema)}"
    if diff.kind == "index":
        index = next((i for i in parent.indexes if i.name == name), None)
        if index is None:
            return None
        return (
            f"recreate the index as it was before the upgrade: op.drop_index({_py(name)}, "
            f"table_name={table_kw}), then {_execute(index.definition)}"
        )
    constraint = next((c for c in parent.constraints if c.name == name), None)
    if constraint is None:
        return None
    type_ = _CONSTRAINT_TYPES.get(str(constraint.kind))
    type_kw = f", type_={_py(type_)}" if type_ else ""
    add = (
        f"ALTER TABLE {_sql_name(schema, table)} ADD CONSTRAINT {_ident(name)} "
        f"{constraint.definition}"
    )
    return (
        f"recreate the constraint as it was before the upgrade: op.drop_constraint({_py(name)}, "
        f"{table_kw}{type_kw}), then {_execute(add)}"
    )


def _left_behind(diff: Difference, obj: Any) -> str | None:
    kind = diff.kind
    if kind in ("column", "index", "constraint", "trigger", "policy"):
        return _member_left(diff, obj)
    schema, name = _split(diff.name)
    if isinstance(getattr(obj, "schema", None), str) and isinstance(
        getattr(obj, "name", None), str
    ):
        schema, name = obj.schema, obj.name  # exact even when a name holds a dot
    if kind in ("enum", "composite_type"):
        hint = "drop the type after the tables that use it: " + _execute(
            f"DROP TYPE {_sql_name(schema, name)}"
        )
        if kind == "enum":
            hint += f" or sa.Enum(name={_py(name)}{_schema_kw(schema)}).drop(op.get_bind())"
        return hint
    if kind == "domain":
        return "drop the domain after the tables that use it: " + _execute(
            f"DROP DOMAIN {_sql_name(schema, name)}"
        )
    if kind == "sequence":
        owned_by = getattr(obj, "owned_by", None)
        if owned_by:
            return f"it belongs to column {owned_by}: dropping that column (or its table) drops it"
        return "drop the sequence after the columns whose default uses it: " + _execute(
            f"DROP SEQUENCE {_sql_name(schema, name)}"
        )
    if kind == "table":
        return "drop the table, after the tables whose foreign keys reference it: " + (
            f"op.drop_table({_py(name)}{_schema_kw(schema)})"
        )
    if kind in ("view", "materialized_view"):
        what = "MATERIALIZED VIEW" if kind == "materialized_view" else "VIEW"
        return f"drop the {KIND_WORDS[kind]} before what it reads: " + _execute(
            f"DROP {what} {_sql_name(schema, name)}"
        )
    if kind in ("function", "procedure", "aggregate", "window"):
        arguments = getattr(obj, "arguments", None)
        if not isinstance(arguments, str):  # the signature: schema.name(arguments)
            _, name = _split(diff.name.partition("(")[0])
            arguments = diff.name.partition("(")[2].removesuffix(")")
        what = {"procedure": "PROCEDURE", "aggregate": "AGGREGATE"}.get(kind, "FUNCTION")
        sql = f"DROP {what} {_sql_name(schema, name)}({arguments})"
        return f"drop the {KIND_WORDS[kind]} after the triggers and defaults that call it: " + (
            _execute(sql)
        )
    if kind == "extension":
        return "drop the extension if this revision created it: " + _execute(
            f"DROP EXTENSION {_ident(diff.name)}"
        )
    if kind == "schema":
        return "drop the schema after the objects in it: " + _execute(
            f"DROP SCHEMA {_ident(diff.name)}"
        )
    return None


def _member_left(diff: Difference, obj: Any) -> str | None:
    schema, table, name = _member(diff)
    table_kw = f"{_py(table)}{_schema_kw(schema)}"
    if diff.kind == "column":
        return f"drop the column: op.drop_column({_py(table)}, {_py(name)}{_schema_kw(schema)})"
    if diff.kind == "index":
        constraint = getattr(obj, "constraint", None)
        if constraint:
            return f"drop the constraint {constraint}, which drops its index"
        return (
            f"drop the index: op.drop_index({_py(name)}, table_name={_py(table)}"
            f"{_schema_kw(schema)})"
        )
    if diff.kind == "constraint":
        type_ = _CONSTRAINT_TYPES.get(str(getattr(obj, "kind", "")))
        type_kw = f", type_={_py(type_)}" if type_ else ""
        return f"drop the constraint: op.drop_constraint({_py(name)}, {table_kw}{type_kw})"
    if diff.kind == "trigger":
        return "drop the trigger: " + _execute(
            f"DROP TRIGGER {_ident(name)} ON {_sql_name(schema, table)}"
        )
    if diff.kind == "policy":
        return "drop the policy: " + _execute(
            f"DROP POLICY {_ident(name)} ON {_sql_name(schema, table)}"
        )
    return None


def _renamed(diff: Difference) -> str | None:
    """The same object under another name after the downgrade (``before``: its name before the
    upgrade, ``after``: the downgrade's): the downgrade recreated it under a new name."""
    old, new = diff.before, diff.after
    if not isinstance(old, str) or not isinstance(new, str):
        return None
    if diff.kind == "constraint":
        schema, table, _ = _member(diff)
        sql = f"ALTER TABLE {_sql_name(schema, table)} RENAME CONSTRAINT {_ident(new)} TO "
    elif diff.kind == "index":
        schema, _, _ = _member(diff)
        sql = f"ALTER INDEX {_sql_name(schema, new)} RENAME TO "
    elif diff.kind == "sequence":
        schema, _ = _split(diff.name)
        sql = f"ALTER SEQUENCE {_sql_name(schema, new)} RENAME TO "
    elif diff.kind == "domain":  # one of the domain's constraints
        schema, name = _split(diff.name)
        sql = f"ALTER DOMAIN {_sql_name(schema, name)} RENAME CONSTRAINT {_ident(new)} TO "
    else:
        return None
    return (
        f"create it under its name from before the upgrade, {old} (or rename it: "
        + _execute(sql + _ident(old))
        + ")"
    )


def _column_changed(diff: Difference) -> str | None:
    schema, table, name = _member(diff)
    head = f"op.alter_column({_py(table)}, {_py(name)}"
    tail = f"{_schema_kw(schema)})"
    before = diff.before
    if diff.attribute == "default":
        value = "None" if before is None else f"sa.text({_py(str(before))})"
        return f"restore the column's default: {head}, server_default={value}{tail}"
    if diff.attribute == "nullable" and isinstance(before, bool):
        return f"restore the column's nullability: {head}, nullable={before}{tail}"
    if diff.attribute == "type" and isinstance(before, str):
        return "restore the column's type: " + _execute(
            f"ALTER TABLE {_sql_name(schema, table)} ALTER COLUMN {_ident(name)} TYPE {before}"
        )
    return None
