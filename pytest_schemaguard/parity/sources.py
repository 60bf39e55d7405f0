"""Where in the models each table, column, index, constraint and enum is written.

A model difference is fixed in the models' source, so ``orm_parity`` names the place:
``column public.orders.total: type numeric(10,2) → numeric(12,2) (model Order.total,
shop/models.py:25)``.  The places are read when the metadata is loaded, from the original
metadata (the copy the check compares has tables of its own, which no mapper knows):

- mapped classes come from SQLAlchemy's registries (each mapper's ``local_table``); the class
  body is read with :mod:`ast`: ``total: Mapped[...] = mapped_column(...)`` for a column, the
  entries of ``__table_args__`` for named indexes and constraints, ``Column("name", ...)``
  inside a ``__table__ = Table(...)``;
- a plain ``Table(...)`` is found as a module-level variable of a module under the project's
  directory, and its ``Column(...)``, ``Index(...)`` and constraint arguments are read the same
  way.

Finding a place is best effort: anything that cannot be found, or that fails, is simply not
named, and the difference's line stays as it was.

This module does not import pytest.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import os
import re
import sys
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_schemaguard.snapshot.compare import Difference

if TYPE_CHECKING:
    from sqlalchemy import MetaData

__all__ = ["ModelSources", "Source", "locate_models", "remember_sources", "sources_of"]


@dataclass(frozen=True)
class Source:
    """A place in the models: what is written there, and the file and line."""

    what: str
    """``model Order.total``, ``model Order.__table_args__``, ``model Order``,
    ``Table entry_tags.c.tag``, ``Table entry_tags``."""
    file: str
    """Relative to the project's configuration directory when it lies inside it."""
    line: int

    def __str__(self) -> str:
        return f"{self.what}, {self.file}:{self.line}"


@dataclass(frozen=True)
class ModelSources:
    """Places of the model objects, by ``(kind, qualified name)`` as the snapshot comparison
    names them: ``("column", "public.orders.total")``, ``("index",
    "public.orders.ix_orders_status")``, ``("enum", "public.order_status")``."""

    places: Mapping[tuple[str, str], Source] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.places)

    def locate(self, difference: Difference) -> Source | None:
        """The place in the models of the object a difference is about; ``None`` when the
        object is not in the models (present only in the migrations) or was not found."""
        if difference.category == "only_left":
            return None
        name = difference.name
        if difference.category == "name" and difference.parent and difference.after:
            # the models' object carries the other name
            name = f"{difference.parent}.{difference.after}"
        found = self.places.get((difference.kind, name))
        if found is not None or difference.kind not in ("index", "constraint"):
            return found
        table = difference.parent
        obj = difference.after if difference.category == "only_right" else None
        columns = tuple(getattr(obj, "columns", ()) or ())
        if table and len(columns) == 1:
            found = self.places.get(("column", f"{table}.{columns[0]}"))
        if found is None and table:
            found = self.places.get(("table", table))
        return found

    def suffix(self, difference: Difference) -> str:
        """`` (model Order.total, shop/models.py:25)``, or ``""``."""
        try:
            found = self.locate(difference)
        except Exception:  # never let a place that cannot be named break the check
            return ""
        return f" ({found})" if found is not None else ""


# The places of the copies the checks compare, kept with them (see capture_metadata).
_REMEMBERED: weakref.WeakKeyDictionary[Any, ModelSources] = weakref.WeakKeyDictionary()


def remember_sources(metadata: MetaData, sources: ModelSources) -> None:
    """Keep ``sources`` with ``metadata`` (the copy whose original they were read from)."""
    _REMEMBERED[metadata] = sources


def sources_of(metadata: MetaData, root: Path) -> ModelSources:
    """The places remembered for ``metadata``, else read from it (a metadata handed over by a
    ``schemaguard_metadata`` fixture is the original)."""
    remembered = _REMEMBERED.get(metadata)
    if remembered is not None:
        return remembered
    return locate_models(metadata, root)


def locate_models(metadata: MetaData, root: Path) -> ModelSources:
    """The places of the objects of ``metadata``'s tables; empty when nothing can be found."""
    try:
        with warnings.catch_warnings():
            # the project's warning filters (errors?) are not ours to trip over
            warnings.simplefilter("ignore")
            return ModelSources(_Locator(metadata, root).run())
    except Exception:
        return ModelSources()


# --------------------------------------------------------------------------- reading sources

_CONSTRAINT_CALLS = frozenset(
    {
        "Index",
        "UniqueConstraint",
        "CheckConstraint",
        "ForeignKeyConstraint",
        "PrimaryKeyConstraint",
        "ExcludeConstraint",
    }
)
_COLUMN_CALLS = frozenset({"Column", "mapped_column"})


def _call_name(node: ast.AST) -> str | None:
    """``Index`` for ``Index(...)``, ``sa.Index(...)`` and ``sqlalchemy.schema.Index(...)``."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _str_arg(call: ast.Call, keyword: str) -> str | None:
    """The string given as ``keyword=`` or, failing that, as the first positional argument."""
    for kw in call.keywords:
        if kw.arg == keyword and isinstance(kw.value, ast.Constant):
            return kw.value.value if isinstance(kw.value.value, str) else None
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _assigned_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    return []


@dataclass
class _Body:
    """What one class body or ``Table(...)`` call defines, with line numbers."""

    attributes: dict[str, int] = field(default_factory=dict)
    """Assigned names (class attributes)."""
    columns: dict[str, int] = field(default_factory=dict)
    """``Column("name", ...)`` / ``mapped_column("name", ...)`` calls, by the name given."""
    named: dict[str, int] = field(default_factory=dict)
    """``Index("name", ...)`` and constraints with ``name="..."``."""


def _read_calls(node: ast.AST, body: _Body) -> None:
    for sub in ast.walk(node):
        called = _call_name(sub)
        if called is None:
            continue
        assert isinstance(sub, ast.Call)
        if called in _COLUMN_CALLS:
            name = _str_arg(sub, "name")
            if name is not None:
                body.columns.setdefault(name, sub.lineno)
        elif called in _CONSTRAINT_CALLS:
            name = _str_arg(sub, "name") if called == "Index" else _keyword_str(sub, "name")
            if name is not None:
                body.named.setdefault(name, sub.lineno)


def _keyword_str(call: ast.Call, keyword: str) -> str | None:
    for kw in call.keywords:
        if kw.arg == keyword and isinstance(kw.value, ast.Constant):
            return kw.value.value if isinstance(kw.value.value, str) else None
    return None


# installed packages, even in a virtual environment inside the project
_INSTALLED = re.compile(r"[/\\](?:site|dist)-packages(?:[/\\]|$)")


class _Locator:
    def __init__(self, metadata: MetaData, root: Path) -> None:
        self.metadata = metadata
        self.root = root.resolve()
        self.places: dict[tuple[str, str], Source] = {}
        self._trees: dict[str, ast.Module | None] = {}
        self._classes: dict[int, dict[str, list[ast.ClassDef]]] = {}
        self._folders: dict[str, bool] = {}

    # ------------------------------------------------------------------ files
    def _shown(self, file: str) -> str:
        path = Path(file).resolve()
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _tree(self, file: str) -> ast.Module | None:
        if file not in self._trees:
            try:
                self._trees[file] = ast.parse(Path(file).read_text(encoding="utf-8"), file)
            except Exception:
                self._trees[file] = None
        return self._trees[file]

    def _add(self, key: tuple[str, str], what: str, file: str, line: int) -> None:
        self.places.setdefault(key, Source(what, self._shown(file), line))

    # ------------------------------------------------------------------ the walk
    def run(self) -> dict[tuple[str, str], Source]:
        tables = {id(t): t for t in self.metadata.tables.values()}
        for mapper in self._mappers(tables):
            try:
                self._mapped(mapper)
            except Exception:
                continue
        for module_file, variable, table in self._table_variables(tables):
            try:
                self._plain(module_file, variable, table)
            except Exception:
                continue
        with contextlib.suppress(Exception):
            self._enums()
        return self.places

    def _mappers(self, tables: dict[int, Any]) -> list[Any]:
        """The mappers of classes whose own table is one of ``tables``, base classes first."""
        try:
            # every registry (declarative bases and registry() objects); the module, not the
            # legacy mapper() function sqlalchemy.orm exports under the same name
            mapperlib = importlib.import_module("sqlalchemy.orm.mapper")
            registries = list(mapperlib._all_registries())
        except Exception:
            return []
        found = [
            m
            for r in registries
            for m in list(r.mappers)
            if id(getattr(m, "local_table", None)) in tables
        ]
        return sorted(found, key=lambda m: len(m.class_.__mro__))

    def _inside(self, file: str) -> bool:
        """Whether ``file`` lies in the project's directory (and not in a virtual environment
        kept there)."""
        folder = os.path.dirname(file)
        inside = self._folders.get(folder)
        if inside is None:
            inside = False
            if not _INSTALLED.search(folder):
                with contextlib.suppress(ValueError, OSError):
                    Path(folder).resolve().relative_to(self.root)
                    inside = True
            self._folders[folder] = inside
        return inside

    def _class_body(self, cls: type) -> tuple[str, _Body] | None:
        """The body of ``cls`` when its source is a file of the project (not a library's)."""
        file = inspect.getsourcefile(cls)
        if file is None or not self._inside(file):
            return None
        tree = self._tree(file)
        if tree is None:
            return None
        node = self._class_node(tree, cls)
        if node is None:
            return None
        body = _Body()
        body.attributes["__class__"] = node.lineno
        for stmt in node.body:
            for name in _assigned_names(stmt):
                body.attributes.setdefault(name, stmt.lineno)
                if name == "__table_args__" or name == "__table__":
                    value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
                    if value is not None:
                        _read_calls(value, body)
        return file, body

    def _class_node(self, tree: ast.Module, cls: type) -> ast.ClassDef | None:
        parts = [p for p in cls.__qualname__.split(".") if p != "<locals>"]
        first_line = getattr(cls, "__firstlineno__", None)
        classes = self._classes.get(id(tree))
        if classes is None:
            classes = self._classes[id(tree)] = {}
            for n in ast.walk(tree):
                if isinstance(n, ast.ClassDef):
                    classes.setdefault(n.name, []).append(n)
        candidates = list(classes.get(parts[-1], ()))
        if first_line is not None:
            candidates = [n for n in candidates if n.lineno == first_line] or candidates
        if len(parts) == 1 and "<locals>" not in cls.__qualname__:
            top = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == parts[0]]
            candidates = top or candidates
        # a class defined twice in a module: the last definition is the one in use
        return candidates[-1] if candidates else None

    def _mapped(self, mapper: Any) -> None:
        cls = mapper.class_
        table = mapper.local_table
        table_name = _qualified(table.schema, table.name)
        keys_by_column: dict[str, str] = {}
        for key, column in mapper.columns.items():
            if getattr(column, "table", None) is table:
                keys_by_column.setdefault(column.name, key)
        # the class (or the mixin) whose body writes the attribute
        bodies: list[tuple[type, str, _Body]] = []
        for klass in cls.__mro__:
            if klass is object:
                continue
            try:
                read = self._class_body(klass)
            except (TypeError, OSError):
                read = None
            if read is not None:
                bodies.append((klass, *read))
        if not bodies or bodies[0][0] is not cls:
            return
        _, class_file, class_body = bodies[0]
        self._add(
            ("table", table_name),
            f"model {cls.__name__}",
            class_file,
            class_body.attributes["__class__"],
        )
        column_places: dict[str, tuple[str, str, int]] = {}
        for column in table.columns:
            key = keys_by_column.get(column.name)
            for _klass, file, body in bodies:
                line = body.attributes.get(key) if key else None
                if line is None:
                    line = body.columns.get(column.name)
                if line is not None:
                    what = f"model {cls.__name__}.{key or column.name}"
                    column_places[column.name] = (what, file, line)
                    self._add(("column", f"{table_name}.{column.name}"), what, file, line)
                    break
        for obj in (*table.indexes, *table.constraints):
            name = _object_name(obj)
            if name is None:
                continue
            kind = "index" if obj.__visit_name__ == "index" else "constraint"
            key = (kind, f"{table_name}.{name}")
            for _klass, file, body in bodies:
                line = _written(name, body.named)
                if line is not None:
                    holder = (
                        "__table_args__" if "__table_args__" in body.attributes else "__table__"
                    )
                    self._add(key, f"model {cls.__name__}.{holder}", file, line)
                    break
            else:
                cols = [c.name for c in getattr(obj, "columns", ())]
                if len(cols) == 1 and cols[0] in column_places:
                    self._add(key, *column_places[cols[0]])

    # ------------------------------------------------------------------ plain tables
    def _table_variables(self, tables: dict[int, Any]) -> Iterator[tuple[str, str, Any]]:
        """``(module file, variable, table)`` for each table held by a module-level variable
        of a module under the project's directory."""
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if not isinstance(file, str) or not file.endswith(".py") or not self._inside(file):
                continue
            try:
                names = list(vars(module).items())
            except TypeError:
                continue
            for variable, value in names:
                if id(value) in tables and tables[id(value)] is value:
                    yield file, variable, value

    def _plain(self, file: str, variable: str, table: Any) -> None:
        tree = self._tree(file)
        if tree is None:
            return
        found: tuple[ast.AST, int] | None = None
        for stmt in tree.body:
            value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
            if value is not None and variable in _assigned_names(stmt):
                # the last assignment is the one in use
                found = (value, stmt.lineno) if _call_name(value) == "Table" else None
        if found is None:
            return
        call, line = found
        body = _Body()
        _read_calls(call, body)
        table_name = _qualified(table.schema, table.name)
        self._add(("table", table_name), f"Table {variable}", file, line)
        column_places: dict[str, tuple[str, str, int]] = {}
        for column in table.columns:
            col_line = body.columns.get(column.name)
            if col_line is not None:
                what = f"Table {variable}.c.{column.name}"
                column_places[column.name] = (what, file, col_line)
                self._add(("column", f"{table_name}.{column.name}"), what, file, col_line)
        for obj in (*table.indexes, *table.constraints):
            name = _object_name(obj)
            if name is None:
                continue
            kind = "index" if obj.__visit_name__ == "index" else "constraint"
            key = (kind, f"{table_name}.{name}")
            named_line = _written(name, body.named)
            if named_line is not None:
                self._add(key, f"Table {variable}", file, named_line)
                continue
            cols = [c.name for c in getattr(obj, "columns", ())]
            if len(cols) == 1 and cols[0] in column_places:
                self._add(key, *column_places[cols[0]])

    # ------------------------------------------------------------------ enums
    def _enums(self) -> None:
        """An enum type is written where the first column using it is."""
        for table in self.metadata.sorted_tables:
            table_name = _qualified(table.schema, table.name)
            for column in table.columns:
                enum_name = getattr(column.type, "name", None)
                if not isinstance(enum_name, str) or not hasattr(column.type, "enums"):
                    continue
                place = self.places.get(("column", f"{table_name}.{column.name}"))
                if place is None:
                    continue
                # its own schema, else the table's (when it inherits it) or the default one
                schema = getattr(column.type, "schema", None)
                for where in {schema} if schema else {table.schema, None}:
                    self.places.setdefault(("enum", _qualified(where, enum_name)), place)


def _written(name: str, named: Mapping[str, int]) -> int | None:
    """The line of the index or constraint ``name`` among those written with a name: the same
    name, else the longest one a naming convention turns into it (``name="positive"`` becomes
    ``ck_orders_positive`` under ``"ck": "ck_%(table_name)s_%(constraint_name)s"``)."""
    if name in named:
        return named[name]
    suffixes = [n for n in named if name.endswith(f"_{n}")]
    return named[max(suffixes, key=len)] if suffixes else None


def _qualified(schema: str | None, name: str) -> str:
    return f"{schema or 'public'}.{name}"


def _object_name(obj: Any) -> str | None:
    """The name PostgreSQL gets for an index or constraint (naming conventions applied,
    truncated as SQLAlchemy truncates); ``None`` for one the server names itself."""
    try:
        name = _preparer().format_constraint(obj, _alembic_quote=False)
    except Exception:
        name = obj.name if isinstance(obj.name, str) else None
    return str(name) if name else None


@functools.cache
def _preparer() -> Any:
    from sqlalchemy.dialects import postgresql

    dialect: Any = postgresql.dialect
    return dialect().identifier_preparer
