"""The schema snapshot: frozen, canonically ordered plain data describing a PostgreSQL schema.

Every source of truth (migrations, ORM models, a pg_dump baseline, legacy DDL) is turned into a
:class:`Snapshot`; every check compares two snapshots.  All textual parts (types, defaults,
expressions, definitions) are what PostgreSQL itself reports (``format_type``, ``pg_get_expr``,
``pg_get_constraintdef``, ``pg_get_indexdef``...), so that two spellings of the same thing compare
equal.

Names are plain, unquoted ``schema.name`` strings (``"public.tasks"``); a column is addressed
as ``"public.tasks.owner_id"``.

Ordering is canonical: every collection is sorted when the object is built (columns by position,
everything else by name), so two snapshots of the same schema are equal (``==``) and serialise to
the same JSON, whoever built them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

__all__ = [
    "FORMAT_VERSION",
    "Column",
    "CompositeAttribute",
    "CompositeType",
    "Constraint",
    "ConstraintKind",
    "Domain",
    "DomainConstraint",
    "Enum",
    "Extension",
    "Function",
    "Grant",
    "Index",
    "Policy",
    "Schema",
    "Sequence",
    "SequenceOptions",
    "Snapshot",
    "SnapshotFormatError",
    "Table",
    "Trigger",
    "View",
    "canonical_expression",
    "qualify",
    "split_qualified",
]

#: Version of the JSON format written by :meth:`Snapshot.to_json`.  Bumped whenever the shape of
#: the data changes; a snapshot file of another version must be regenerated.
FORMAT_VERSION = 1

ConstraintKind = Literal["primary_key", "unique", "check", "foreign_key", "exclude"]
"""Kinds of table constraints (NOT NULL is a column property, see :attr:`Column.nullable`)."""

DEFAULT_SCHEMA = "public"


class SnapshotFormatError(ValueError):
    """A serialised snapshot cannot be read (other format version, or malformed)."""


def qualify(schema: str, name: str) -> str:
    """Return the plain qualified name ``schema.name``."""
    return f"{schema}.{name}"


#: Whole expressions that PostgreSQL stores differently but that mean the same thing, mapped to
#: one spelling (``DEFAULT CURRENT_TIMESTAMP`` is kept as ``CURRENT_TIMESTAMP``, ``DEFAULT now()``
#: as ``now()``; both are the transaction start time).
EQUIVALENT_EXPRESSIONS: dict[str, str] = {
    "CURRENT_TIMESTAMP": "now()",
    "transaction_timestamp()": "now()",
}


def canonical_expression(text: str | None) -> str | None:
    """One spelling for a default expression that PostgreSQL may print in two ways."""
    if text is None:
        return None
    return EQUIVALENT_EXPRESSIONS.get(text, text)


def split_qualified(name: str, default_schema: str = DEFAULT_SCHEMA) -> tuple[str, str]:
    """Split ``"schema.name"`` into its parts; a bare ``"name"`` is in ``default_schema``."""
    schema, dot, rest = name.partition(".")
    if not dot:
        return default_schema, name
    return schema, rest


def _sorted(items: Iterable[_T], key: Any) -> tuple[_T, ...]:
    result = tuple(items)
    if len(result) < 2:
        return result
    return tuple(sorted(result, key=key))


#: Sort keys (``attrgetter`` with several names returns a tuple).
_by_name = operator.attrgetter("name")
_by_schema_name = operator.attrgetter("schema", "name")
_by_position = operator.attrgetter("position", "name")


def _by_grant(grant: Grant) -> tuple[str, str, str]:
    return (grant.grantee, grant.column or "", grant.privilege)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _assemble(cls: type[_T], fields: dict[str, Any]) -> _T:
    """An instance of the frozen dataclass ``cls`` with exactly ``fields`` (every field, already
    of its declared type), made without calling ``__init__``.

    For introspection, which builds thousands of leaf objects (columns, constraints, indexes)
    from trusted catalog rows; only for classes without ``__post_init__``.  The instance is
    indistinguishable from one made by ``cls(**fields)``."""
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", fields)
    return obj


_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Table parts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceOptions:
    """Options of a sequence generator (used for identity columns)."""

    data_type: str = "bigint"
    start: int = 1
    increment: int = 1
    min_value: int = 1
    max_value: int = 9223372036854775807
    cache: int = 1
    cycle: bool = False


@dataclass(frozen=True)
class Grant:
    """One privilege granted on a table (or one of its columns when ``column`` is set)."""

    grantee: str
    privilege: str
    grantable: bool = False
    column: str | None = None


@dataclass(frozen=True)
class Column:
    """A column of a table, view or materialized view."""

    name: str
    type: str
    """The type as ``format_type(atttypid, atttypmod)`` reports it, e.g. ``character varying(20)``,
    ``timestamp with time zone``, ``integer[]``, ``public.order_status`` (schema-qualified only
    when the type's schema is not on the search path)."""
    nullable: bool = True
    default: str | None = None
    """``pg_get_expr(adbin, adrelid)``; ``None`` for no default (and for generated columns)."""
    position: int = 0
    """1-based logical position among the live columns (not ``attnum``, which has gaps)."""
    base_type: str = ""
    """The type without modifiers (``format_type(atttypid, NULL)``): ``character varying``."""
    collation: str | None = None
    """Explicit collation when it differs from the type's default collation."""
    identity: Literal["always", "by default"] | None = None
    identity_options: SequenceOptions | None = None
    generated: str | None = None
    """Expression of a ``GENERATED ALWAYS AS (...) STORED`` column."""
    comment: str | None = None

    @property
    def is_array(self) -> bool:
        return self.type.endswith("]")


@dataclass(frozen=True)
class Constraint:
    """A table constraint: primary key, unique, check, foreign key or exclusion."""

    name: str
    kind: ConstraintKind
    definition: str
    """``pg_get_constraintdef``: e.g. ``FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE
    CASCADE``, ``CHECK ((qty > 0))``, ``PRIMARY KEY (id)``; includes ``NOT VALID`` and
    ``DEFERRABLE`` when set."""
    columns: tuple[str, ...] = ()
    """Constrained columns in constraint order (empty for a CHECK on an expression only)."""
    referenced_table: str | None = None
    """Foreign keys: qualified name of the referenced table (``public.users``)."""
    referenced_columns: tuple[str, ...] = ()
    on_update: str | None = None
    """Foreign keys: ``no action`` | ``restrict`` | ``cascade`` | ``set null`` | ``set default``."""
    on_delete: str | None = None
    match: str | None = None
    """Foreign keys: ``simple`` | ``full`` | ``partial``."""
    deferrable: bool = False
    initially_deferred: bool = False
    validated: bool = True
    index: str | None = None
    """Name of the index backing a primary key, unique or exclusion constraint."""
    comment: str | None = None

    @property
    def is_primary_key(self) -> bool:
        return self.kind == "primary_key"

    @property
    def is_foreign_key(self) -> bool:
        return self.kind == "foreign_key"


@dataclass(frozen=True)
class Index:
    """An index (including the ones backing primary key / unique / exclusion constraints)."""

    name: str
    table: str
    """Qualified name of the indexed table or materialized view."""
    definition: str
    """``pg_get_indexdef``: ``CREATE UNIQUE INDEX ix ON public.t USING btree (a) WHERE ...``."""
    signature: str = ""
    """The definition without the index name (``ON public.t USING btree (a) WHERE ...``): two
    indexes with the same signature are the same index under another name."""
    columns: tuple[str, ...] = ()
    """Key columns; an expression key is given as its text, e.g. ``lower(email)``."""
    include: tuple[str, ...] = ()
    """``INCLUDE`` (non-key) columns."""
    method: str = "btree"
    unique: bool = False
    primary: bool = False
    nulls_not_distinct: bool = False
    predicate: str | None = None
    """``WHERE`` clause of a partial index, as ``pg_get_expr`` prints it."""
    valid: bool = True
    constraint: str | None = None
    """Name of the constraint this index implements, if any."""
    comment: str | None = None


@dataclass(frozen=True)
class Trigger:
    """A (non-internal) trigger on a table or view."""

    name: str
    table: str
    definition: str
    """``pg_get_triggerdef``."""
    enabled: Literal["origin", "always", "replica", "disabled"] = "origin"
    comment: str | None = None


@dataclass(frozen=True)
class Policy:
    """A row-level security policy."""

    name: str
    table: str
    command: Literal["ALL", "SELECT", "INSERT", "UPDATE", "DELETE"] = "ALL"
    permissive: bool = True
    roles: tuple[str, ...] = ("public",)
    using: str | None = None
    with_check: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Table:
    """A table (plain, partitioned, or a partition) with everything attached to it."""

    schema: str
    name: str
    columns: tuple[Column, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    indexes: tuple[Index, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    policies: tuple[Policy, ...] = ()
    grants: tuple[Grant, ...] = ()
    partitioned: bool = False
    persistence: Literal["permanent", "unlogged", "temporary"] = "permanent"
    partition_key: str | None = None
    """``pg_get_partkeydef`` of a partitioned table: ``RANGE (created_at)``."""
    partition_of: str | None = None
    """Qualified name of the parent of a partition."""
    partition_bound: str | None = None
    """Bound of a partition: ``FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')``."""
    inherits: tuple[str, ...] = ()
    """Qualified names of the parents of a (non-partition) inheritance child."""
    rls_enabled: bool = False
    rls_forced: bool = False
    options: tuple[str, ...] = ()
    """Storage parameters (``reloptions``), e.g. ``fillfactor=70``."""
    comment: str | None = None

    def __post_init__(self) -> None:
        _set(self, "columns", _sorted(self.columns, key=_by_position))
        _set(self, "constraints", _sorted(self.constraints, key=_by_name))
        _set(self, "indexes", _sorted(self.indexes, key=_by_name))
        _set(self, "triggers", _sorted(self.triggers, key=_by_name))
        _set(self, "policies", _sorted(self.policies, key=_by_name))
        _set(self, "grants", _sorted(self.grants, key=_by_grant))
        _set(self, "inherits", tuple(self.inherits))
        _set(self, "options", tuple(sorted(self.options)))

    @property
    def qualified_name(self) -> str:
        return qualify(self.schema, self.name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @functools.cached_property
    def _columns_by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    def column(self, name: str) -> Column:
        """The column called ``name``; ``KeyError`` naming the existing columns otherwise."""
        try:
            return self._columns_by_name[name]
        except KeyError:
            raise KeyError(
                f"table {self.qualified_name} has no column {name!r} "
                f"(columns: {', '.join(self.column_names) or 'none'})"
            ) from None

    def get_column(self, name: str) -> Column | None:
        return self._columns_by_name.get(name)

    def has_column(self, name: str) -> bool:
        return name in self._columns_by_name

    @property
    def primary_key(self) -> Constraint | None:
        for c in self.constraints:
            if c.kind == "primary_key":
                return c
        return None

    @property
    def foreign_keys(self) -> tuple[Constraint, ...]:
        return tuple(c for c in self.constraints if c.kind == "foreign_key")

    @property
    def unique_constraints(self) -> tuple[Constraint, ...]:
        return tuple(c for c in self.constraints if c.kind == "unique")

    @property
    def check_constraints(self) -> tuple[Constraint, ...]:
        return tuple(c for c in self.constraints if c.kind == "check")

    def constraint(self, name: str) -> Constraint:
        return _find(self.constraints, name, f"constraint of table {self.qualified_name}")

    def index(self, name: str) -> Index:
        return _find(self.indexes, name, f"index of table {self.qualified_name}")

    def trigger(self, name: str) -> Trigger:
        return _find(self.triggers, name, f"trigger of table {self.qualified_name}")

    def policy(self, name: str) -> Policy:
        return _find(self.policies, name, f"policy of table {self.qualified_name}")


def _find(items: tuple[_T, ...], name: str, what: str) -> _T:
    for item in items:
        if item.name == name:  # type: ignore[attr-defined]
            return item
    names = ", ".join(i.name for i in items) or "none"  # type: ignore[attr-defined]
    raise KeyError(f"no {what} named {name!r} (existing: {names})")


# --------------------------------------------------------------------------------------------
# Other schema objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
    name: str
    comment: str | None = None


@dataclass(frozen=True)
class Sequence:
    """A free-standing sequence (identity sequences are part of their column instead)."""

    schema: str
    name: str
    data_type: str = "bigint"
    start: int = 1
    increment: int = 1
    min_value: int = 1
    max_value: int = 9223372036854775807
    cache: int = 1
    cycle: bool = False
    owned_by: str | None = None
    """``OWNED BY`` column as ``schema.table.column`` (set for ``serial`` columns)."""
    comment: str | None = None

    @property
    def qualified_name(self) -> str:
        return qualify(self.schema, self.name)


@dataclass(frozen=True)
class Enum:
    """An enum type; ``labels`` in their sort order."""

    schema: str
    name: str
    labels: tuple[str, ...] = ()
    comment: str | None = None

    def __post_init__(self) -> None:
        _set(self, "labels", tuple(self.labels))

    @property
    def qualified_name(self) -> str:
        return qualify(self.schema, self.name)


@dataclass(frozen=True)
class DomainConstraint:
    name: str
    definition: str
    validated: bool = True


@dataclass(frozen=True)
class Domain:
    schema: str
    name: str
    base_type: str
    nullable: bool = True
    default: str | None = None
    collation: str | None = None
    constraints: tuple[DomainConstraint, ...] = ()
    comment: str | None = None

    def __post_init__(self) -> None:
        _set(self, "constraints", _sorted(self.constraints, key=_by_name))

    @property
    def qualified_name(self) -> str:
        return qualify(self.schema, self.name)


@dataclass(frozen=True)
class CompositeAttribute:
    name: str
    type: str
    collation: str | None = None


@dataclass(frozen=True)
class CompositeType:
    """A composite type created with ``CREATE TYPE ... AS (...)``; attributes in order."""

    schema: str
    name: str
    attributes: tuple[CompositeAttribute, ...] = ()
    comment: str | None = None

    def __post_init__(self) -> None:
        _set(self, "attributes", tuple(self.attributes))

    @property
    def qualified_name(self) -> str:
        return qualify(self.schema, self.name)


@dataclass(frozen=True)
class View:
    """A view or materialized view."""

    schema: str
    name: str
    definition: str
    """``pg_get_viewdef``."""
    materialized: bool = False
    columns: tuple[Column, ...] = ()
    indexes: tuple[Index, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    grants: tuple[Grant, ...] = ()
    options: tuple[str, ...] = ()
    """``reloptions``: ``check_option=local``, ``security_barrier=true``..."""
    comment: str | None = None

    def __post_init__(self) -> None:
        _set(self, "columns", _sorted(self.columns, key=_by_position))
        _set(self, "indexes", _sorted(self.indexes, key=_by_name))
        _set(self, "triggers", _sorted(self.triggers, key=_by_name))
        _set(self, "grants", _sorted(self.grants, key=_by_grant))
        _set(self, "options", tuple(sorted(self.options)))

    @property
    def qualified_name(self) -> str:
        return qualify(self.schema, self.name)

    @property
    def kind(self) -> str:
        return "materialized_view" if self.materialized else "view"


@dataclass(frozen=True)
class Function:
    """A function, procedure, aggregate or window function; identified by its signature."""

    schema: str
    name: str
    arguments: str = ""
    """``pg_get_function_identity_arguments``: ``a integer, b text``."""
    kind: Literal["function", "procedure", "aggregate", "window"] = "function"
    result: str | None = None
    """``pg_get_function_result``; ``None`` for procedures."""
    language: str = "sql"
    volatility: Literal["immutable", "stable", "volatile"] = "volatile"
    security_definer: bool = False
    strict: bool = False
    definition: str | None = None
    """``pg_get_functiondef`` (``None`` for aggregates, which it cannot print)."""
    body: str | None = None
    """The source text (``prosrc``); empty for SQL-standard bodies (``BEGIN ATOMIC``), whose
    text is only in ``definition``."""
    comment: str | None = None

    @property
    def qualified_name(self) -> str:
        return qualify(self.schema, self.name)

    @property
    def signature(self) -> str:
        """``schema.name(argument types)``: the identity of the function."""
        return f"{self.qualified_name}({self.arguments})"


@dataclass(frozen=True)
class Extension:
    name: str
    schema: str
    version: str


# --------------------------------------------------------------------------------------------
# The snapshot
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """A whole database schema, as plain data."""

    server_version: int = 0
    """``server_version_num`` of the server it was read from (e.g. ``150018``); 0 if unknown."""
    schemas: tuple[Schema, ...] = ()
    tables: tuple[Table, ...] = ()
    views: tuple[View, ...] = ()
    sequences: tuple[Sequence, ...] = ()
    enums: tuple[Enum, ...] = ()
    domains: tuple[Domain, ...] = ()
    composite_types: tuple[CompositeType, ...] = ()
    functions: tuple[Function, ...] = ()
    extensions: tuple[Extension, ...] = ()
    grants_included: bool = False
    """Whether grants were read; grants are compared only when both snapshots include them."""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        _set(self, "schemas", _sorted(self.schemas, key=_by_name))
        _set(self, "tables", _sorted(self.tables, key=_by_schema_name))
        _set(self, "views", _sorted(self.views, key=_by_schema_name))
        _set(self, "sequences", _sorted(self.sequences, key=_by_schema_name))
        _set(self, "enums", _sorted(self.enums, key=_by_schema_name))
        _set(self, "domains", _sorted(self.domains, key=_by_schema_name))
        _set(self, "composite_types", _sorted(self.composite_types, key=_by_schema_name))
        _set(
            self,
            "functions",
            _sorted(self.functions, key=lambda f: (f.schema, f.name, f.arguments)),
        )
        _set(self, "extensions", _sorted(self.extensions, key=_by_name))

    # -- lookups ---------------------------------------------------------------------------

    @functools.cached_property
    def _tables_by_name(self) -> dict[str, Table]:
        return {t.qualified_name: t for t in self.tables}

    def table(self, name: str) -> Table:
        """The table ``"schema.name"`` (a bare name means ``public``); ``KeyError`` if absent."""
        table = self.get_table(name)
        if table is None:
            raise KeyError(f"no table {name!r} in the snapshot")
        return table

    def get_table(self, name: str) -> Table | None:
        return self._tables_by_name.get(qualify(*split_qualified(name)))

    def has_table(self, name: str) -> bool:
        return self.get_table(name) is not None

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.qualified_name for t in self.tables)

    def view(self, name: str) -> View:
        return _find_qualified(self.views, name, "view")

    def sequence(self, name: str) -> Sequence:
        return _find_qualified(self.sequences, name, "sequence")

    def enum(self, name: str) -> Enum:
        return _find_qualified(self.enums, name, "enum type")

    def domain(self, name: str) -> Domain:
        return _find_qualified(self.domains, name, "domain")

    def composite_type(self, name: str) -> CompositeType:
        return _find_qualified(self.composite_types, name, "composite type")

    def function(self, name: str) -> Function:
        """A function by ``"schema.name"`` (the only overload) or by full signature."""
        wanted = name if "(" in name else None
        candidates = [
            f
            for f in self.functions
            if (
                f.signature == name
                if wanted
                else f.qualified_name == qualify(*split_qualified(name))
            )
        ]
        if len(candidates) != 1:
            what = "no" if not candidates else "more than one"
            raise KeyError(f"{what} function {name!r} in the snapshot")
        return candidates[0]

    def extension(self, name: str) -> Extension:
        return _find(self.extensions, name, "extension")

    def column(self, name: str) -> Column:
        """A column by ``"schema.table.column"`` (or ``"table.column"`` in ``public``)."""
        table_name, dot, column = name.rpartition(".")
        if not dot:
            raise KeyError(f"column name {name!r} must be 'table.column' or 'schema.table.column'")
        return self.table(table_name).column(column)

    # -- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return _encode(self)  # type: ignore[no-any-return]

    def to_json(self, *, indent: int | None = 1) -> str:
        """Serialise to JSON (stable: same snapshot, same text)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        if not isinstance(data, Mapping):
            raise SnapshotFormatError("a serialised snapshot must be a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise SnapshotFormatError(
                f"schema snapshot has format version {version!r}, but this version of "
                f"pytest-schemaguard reads format version {FORMAT_VERSION}; "
                "regenerate the snapshot (re-run with the update option)"
            )
        try:
            return _decode(cls, data)  # type: ignore[no-any-return]
        except (TypeError, ValueError, KeyError) as exc:
            raise SnapshotFormatError(f"malformed schema snapshot: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SnapshotFormatError(f"schema snapshot is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def _find_qualified(items: tuple[_T, ...], name: str, what: str) -> _T:
    wanted = qualify(*split_qualified(name))
    for item in items:
        if item.qualified_name == wanted:  # type: ignore[attr-defined]
            return item
    raise KeyError(f"no {what} {name!r} in the snapshot")


# --------------------------------------------------------------------------------------------
# JSON encoding / decoding of the dataclasses above
# --------------------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(inner, value)
    if origin is tuple:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(_decode(item_type, v) for v in value)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"unexpected value {value!r}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise TypeError(f"expected an object for {tp.__name__}")
        hints = _hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown field(s) for {tp.__name__}: {', '.join(sorted(unknown))}")
        return tp(**{k: _decode(hints[k], v) for k, v in value.items()})
    if tp is Any:
        return value
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise TypeError(f"expected {tp.__name__}, got {value!r}")
    return value
