"""Turn the JSON documents of the two catalog queries into a :class:`Snapshot`, each section by
the module of its object family."""

from __future__ import annotations

import json
from typing import Any

from pytest_schemaguard.snapshot.introspect.access import read_policies
from pytest_schemaguard.snapshot.introspect.constraints import read_constraints
from pytest_schemaguard.snapshot.introspect.indexes import read_indexes
from pytest_schemaguard.snapshot.introspect.routines import read_functions, read_triggers
from pytest_schemaguard.snapshot.introspect.schemas import read_extensions, read_schemas
from pytest_schemaguard.snapshot.introspect.tables import read_columns, read_relations
from pytest_schemaguard.snapshot.introspect.types import read_sequences, read_types
from pytest_schemaguard.snapshot.model import Snapshot

__all__ = ["Builder", "build_snapshot"]


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
