"""Turn the JSON documents of the two catalog queries into a :class:`Snapshot`, each section by
the module of its object family."""

from __future__ import annotations

import json
import weakref
from typing import Any, Protocol

from pytest_schemaguard.snapshot.introspect.access import read_policies
from pytest_schemaguard.snapshot.introspect.constraints import read_constraints
from pytest_schemaguard.snapshot.introspect.indexes import read_indexes
from pytest_schemaguard.snapshot.introspect.routines import read_functions, read_triggers
from pytest_schemaguard.snapshot.introspect.schemas import read_extensions, read_schemas
from pytest_schemaguard.snapshot.introspect.tables import read_columns, read_relations
from pytest_schemaguard.snapshot.introspect.types import read_sequences, read_types
from pytest_schemaguard.snapshot.model import Column, Snapshot, Table, View


class _CatalogLike(Protocol):
    """What a build by relation needs of a read's catalog (``delta.Catalog``)."""

    @property
    def rows(self) -> dict[str, dict[Any, list[Any]]]: ...

    @property
    def shared(self) -> dict[str, Any]: ...


__all__ = ["Builder", "adopt", "build_catalog", "build_snapshot"]


class Builder:
    """Builds a :class:`Snapshot` from the JSON documents of the two catalog queries, given in
    order to :meth:`add_first` and :meth:`add_second`.

    Every row arrives as an array, in the order of the expressions in the query; constraint and
    index columns arrive as attribute numbers and are named here from the column rows.  With
    ``build=False`` it only keeps the documents' texts (:attr:`documents`)."""

    def __init__(self, include_grants: bool, *, build: bool = True) -> None:
        self.include_grants = include_grants
        self._build = build
        self._result: Snapshot | None = None
        self.documents: list[str] = []
        """The texts of the documents read, in order."""

    def add_first(self, text: str) -> None:
        self.documents.append(text)
        if self._build:
            self.first(json.loads(text))

    def add_second(self, text: str) -> None:
        self.documents.append(text)
        if self._build:
            self.second(json.loads(text))

    def snapshot(self) -> Snapshot:
        if self._result is None:  # pragma: no cover - a programming error
            raise RuntimeError("the catalog queries have not both been read and built")
        return self._result

    def first(self, data: dict[str, Any]) -> None:
        """Sequences, columns and constraints."""
        sequences, identity = read_sequences(data["sequences"])
        columns, attnames, grants = read_columns(data["columns"], identity, self.include_grants)
        self._server_version: int = data["server_version"]
        self._schemas = read_schemas(data["schemas"])
        self._sequences = sequences
        self._columns = columns
        self._attnames = attnames
        self._grants = grants
        self._constraints = read_constraints(data["constraints"], attnames)

    def second(self, data: dict[str, Any]) -> None:
        """Relations and everything attached to them, types, functions, extensions."""
        columns, attnames = self._columns, self._attnames
        relnames = {r[0]: f"{r[1]}.{r[2]}" for r in data["relations"]}
        tables, views = read_relations(
            data["relations"],
            include_grants=self.include_grants,
            columns=columns,
            column_grants=self._grants,
            constraints=self._constraints,
            indexes=read_indexes(data["indexes"], attnames, relnames),
            triggers=read_triggers(data["triggers"], relnames),
            policies=read_policies(data["policies"], relnames),
        )
        enums, domains, composites = read_types(data["types"], columns)
        self._result = Snapshot(
            server_version=self._server_version,
            schemas=self._schemas,
            tables=tuple(tables),
            views=tuple(views),
            sequences=tuple(self._sequences.values()),
            enums=tuple(enums),
            domains=tuple(domains),
            composite_types=tuple(composites),
            functions=read_functions(data["functions"]),
            extensions=read_extensions(data["extensions"]),
            grants_included=self.include_grants,
        )


def build_snapshot(data: dict[str, Any], *, include_grants: bool = False) -> Snapshot:
    """Build a :class:`Snapshot` from the JSON documents of both catalog queries merged into
    one mapping."""
    builder = Builder(include_grants)
    builder.first(data)
    builder.second(data)
    return builder.snapshot()


# ------------------------------------------------------------------------------ by relation

#: What one build made of each relation: relation oid -> (the identities of the row lists it
#: was made from, what was made), for the column lists, the tables and views, and the
#: sequences.  Kept beside the catalog while it lives.
_Parts = dict[Any, tuple[tuple[int, ...], Any]]
_BUILT: weakref.WeakKeyDictionary[_CatalogLike, tuple[_Parts, _Parts, _Parts]] = (
    weakref.WeakKeyDictionary()
)
_ATTACHED = ("constraints", "indexes", "triggers", "policies")


class _Keys:
    """The identities of the row lists each part of a catalog is made from."""

    def __init__(self, rows: dict[str, dict[Any, list[Any]]]) -> None:
        self.rows = rows
        seq_rows = rows["sequences"]
        self.identity_of: dict[Any, list[Any]] = {}
        """Identity sequences by the relation whose columns they serve."""
        for oid, lists in seq_rows.items():
            for row in lists:
                if row[11] == "i":
                    self.identity_of.setdefault(row[12], []).append(oid)
        # looked up once: a build asks for the keys of every relation at every read
        self._columns = rows["columns"].get
        self._constraints, self._indexes, self._triggers, self._policies = (
            rows[section].get for section in _ATTACHED
        )

    def sequence(self, oid: Any) -> tuple[int, ...]:
        return (id(self.rows["sequences"][oid]),)

    def columns(self, oid: Any) -> tuple[int, ...]:
        """A relation's column rows, and the rows of its identity columns' sequences."""
        owned = self.identity_of.get(oid)
        if owned is None:
            return (id(self._columns(oid)),)
        seq_rows = self.rows["sequences"]
        return (id(self._columns(oid)), *[id(seq_rows[s]) for s in owned])

    def relation(self, oid: Any, columns: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """A relation's rows, :meth:`columns` (``columns`` when known) and the rows attached
        to it (constraints, indexes, triggers, policies)."""
        return (
            id(self.rows["relations"][oid]),
            *(columns or self.columns(oid)),
            id(self._constraints(oid)),
            id(self._indexes(oid)),
            id(self._triggers(oid)),
            id(self._policies(oid)),
        )


def build_catalog(catalog: _CatalogLike, base: _CatalogLike | None = None) -> Snapshot:
    """The snapshot of ``catalog`` (as :func:`build_snapshot` of its data), remaking only the
    parts whose rows are not the very lists ``base``'s parts were made from.

    An incremental read (:mod:`~.delta`) hands on the row lists of every relation it did not
    print again, and prints again every relation whose own rows or the names it shows of
    other relations changed; so a relation whose lists are the same objects as in ``base``
    makes the same columns, table or view, and the object made for ``base`` is taken over.
    The identity columns of a table take their options from their sequence's rows, which
    count as the table's too.  Unchanged parts of two snapshots are then one object, which
    also makes comparing them cheap.  (With ``SCHEMAGUARD_CHECK_READS=1`` each such build is
    compared with a whole one.)"""
    rows = catalog.rows
    keys = _Keys(rows)
    previous = _BUILT.get(base) if base is not None else None
    old_columns, old_relations, old_sequences = previous if previous else ({}, {}, {})
    seq_rows = rows["sequences"]

    sequences: _Parts = {}
    for oid, lists in seq_rows.items():
        key = keys.sequence(oid)
        old = old_sequences.get(oid)
        if old is not None and old[0] == key:
            sequences[oid] = old
        else:
            alone, _ = read_sequences(lists)
            sequences[oid] = (key, alone.get(oid))

    columns: _Parts = {}
    column_keys: dict[Any, tuple[int, ...]] = {}
    for oid, lists in rows["columns"].items():
        key = column_keys[oid] = keys.columns(oid)
        old = old_columns.get(oid)
        if old is not None and old[0] == key:
            columns[oid] = old
        else:
            owned = keys.identity_of.get(oid, ())
            _, identity = read_sequences([r for s in owned for r in seq_rows[s]])
            made, _, _ = read_columns(lists, identity, False)
            columns[oid] = (key, made.get(oid, []))
    column_lists = {oid: part[1] for oid, part in columns.items()}

    relations: _Parts = {}
    stale: list[Any] = []
    for oid in rows["relations"]:
        key = keys.relation(oid, column_keys.get(oid))
        old = old_relations.get(oid)
        if old is not None and old[0] == key:
            relations[oid] = old
        else:
            relations[oid] = (key, None)
            stale.append(oid)
    if stale:
        made_relations = _relations(rows, stale, column_lists)
        for oid in stale:
            relations[oid] = (relations[oid][0], made_relations[oid])

    _BUILT[catalog] = (columns, relations, sequences)
    shared = catalog.shared
    enums, domains, composites = read_types(shared["types"], column_lists)
    kept = [part[1] for part in relations.values()]
    return Snapshot(
        server_version=shared["server_version"],
        schemas=read_schemas(shared["schemas"]),
        tables=tuple(k for k in kept if isinstance(k, Table)),
        views=tuple(k for k in kept if isinstance(k, View)),
        sequences=tuple(p[1] for p in sequences.values() if p[1] is not None),
        enums=tuple(enums),
        domains=tuple(domains),
        composite_types=tuple(composites),
        functions=read_functions(shared["functions"]),
        extensions=read_extensions(shared["extensions"]),
        grants_included=False,
    )


def _relations(
    rows: dict[str, dict[Any, list[Any]]], oids: list[Any], columns: dict[Any, list[Column]]
) -> dict[Any, Table | View]:
    """The tables and views ``oids``, made from their rows."""

    def of(section: str) -> list[Any]:
        by_relation = rows[section]
        return [row for oid in oids for row in by_relation.get(oid, ())]

    # a foreign key names the columns of the table it references too
    attnames = _AttNames(rows["columns"])
    relation_rows = of("relations")
    relnames = {r[0]: f"{r[1]}.{r[2]}" for r in relation_rows}
    tables, views = read_relations(
        relation_rows,
        include_grants=False,
        columns=columns,
        column_grants={},
        constraints=read_constraints(of("constraints"), attnames),
        indexes=read_indexes(of("indexes"), attnames, relnames),
        triggers=read_triggers(of("triggers"), relnames),
        policies=read_policies(of("policies"), relnames),
    )
    # read_relations keeps the rows' order within tables and within views
    t, v = iter(tables), iter(views)
    return {row[0]: next(v) if row[3] in ("v", "m") else next(t) for row in relation_rows}


class _AttNames(dict[Any, dict[int, str]]):
    """Each relation's column names by attribute number, made for the relations asked for
    (``get``, as the readers of constraints and indexes ask): those rebuilt and those their
    foreign keys reference, not every relation of the catalog at every read."""

    def __init__(self, columns: dict[Any, list[Any]]) -> None:
        super().__init__()
        self._columns = columns

    def get(self, oid: Any, default: Any = None) -> Any:
        made = super().get(oid)
        if made is None:
            lists = self._columns.get(oid)
            if lists is None:
                return default
            made = self[oid] = {row[1]: row[2] for row in lists}
        return made


def adopt(catalog: _CatalogLike, source: _CatalogLike) -> None:
    """``catalog`` holds the same rows as ``source`` (``Catalog.same``): the parts made of
    ``source`` serve it too, keyed by its own row lists."""
    built = _BUILT.get(source)
    if built is None or catalog is source:
        return
    columns, relations, sequences = built
    rows = catalog.rows
    keys = _Keys(rows)
    _BUILT[catalog] = (
        {o: (keys.columns(o), p[1]) for o, p in columns.items() if o in rows["columns"]},
        {o: (keys.relation(o), p[1]) for o, p in relations.items() if o in rows["relations"]},
        {o: (keys.sequence(o), p[1]) for o, p in sequences.items() if o in rows["sequences"]},
    )
