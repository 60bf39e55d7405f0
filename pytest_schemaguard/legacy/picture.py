"""The partial schema picture that the scripts build, statement by statement.

The picture holds what the scripts say about tables, columns, keys, indexes and enum types,
and every place where a statement *uses* a column (an index key or predicate, a constraint, an
INSERT or UPDATE). Every fact remembers the statement it comes from.

Objects keep their identity through renames: an index created on ``stopped_at`` before
``RENAME COLUMN stopped_at TO end_time`` refers to ``end_time`` afterwards, as it would in
PostgreSQL. Names without a schema are in ``public``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from pytest_schemaguard.legacy.parse import (
    NESTED_TOO_DEEPLY,
    ParsedStatement,
    sql_text,
    unsupported,
)
from pytest_schemaguard.legacy.pgtypes import SqlType, from_sqlglot
from pytest_schemaguard.legacy.values import produced_family
from pytest_schemaguard.sqltext import Statement

__all__ = [
    "ColumnRef",
    "ColumnUse",
    "NotAnalysed",
    "Picture",
    "PictureBuilder",
    "ScriptCheck",
    "ScriptColumn",
    "ScriptEnum",
    "ScriptForeignKey",
    "ScriptIndex",
    "ScriptKey",
    "ScriptTable",
    "TableRef",
    "ValueWrite",
    "build_picture",
]

DEFAULT_SCHEMA = "public"

# CREATE TABLE properties about storage only: nothing the schema comparison looks at (looked up
# by name: not every sqlglot version the package allows has all of them)
_STORAGE_PROPERTIES = tuple(
    node
    for node in (
        getattr(exp, "UnloggedProperty", None),
        getattr(exp, "TableSpaceProperty", None),
        getattr(exp, "FileFormatProperty", None),  # USING <access method>
    )
    if isinstance(node, type)
)


def _storage_only(prop: exp.Expression) -> bool:
    # a plain Property is a WITH (<storage parameter> = ...); its subclasses are other clauses
    return type(prop) is exp.Property or isinstance(prop, _STORAGE_PROPERTIES)


@dataclass(frozen=True, slots=True)
class NotAnalysed:
    """A statement, or a part of one, that the check did not look into."""

    statement: Statement
    reason: str

    @property
    def location(self) -> str:
        return self.statement.location


@dataclass(eq=False)
class ScriptColumn:
    """A column as the scripts define it (current state)."""

    table: ScriptTable
    name: str
    type: SqlType | None
    """``None`` for a column the scripts only rename or alter without defining it."""
    source: Statement
    """Where it was defined (CREATE TABLE, ADD COLUMN) or first altered."""
    type_source: Statement
    line: int = 0
    """File line of the column's definition (or of the alteration that set its type)."""
    nullable: bool = True
    default: str | None = None
    """The default as SQL text (not the parse tree, which would keep its statement's alive)."""
    default_source: Statement | None = None
    defined: bool = True
    """False for a column the scripts never define, only alter or rename."""
    dropped: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.table.qualified_name}.{self.name}"


@dataclass(eq=False, slots=True)
class TableRef:
    """A table as one statement names it; follows later renames when the scripts know it."""

    name: str
    """Qualified name at the time of the statement."""
    table: ScriptTable | None = None

    @property
    def current_name(self) -> str:
        return self.table.qualified_name if self.table is not None else self.name


@dataclass(eq=False, slots=True)
class ColumnRef:
    """A column as one statement names it; follows later renames when the scripts know it."""

    table: TableRef
    name: str
    column: ScriptColumn | None = None

    @property
    def current_table(self) -> str:
        if self.column is not None:
            return self.column.table.qualified_name
        return self.table.current_name

    @property
    def current_name(self) -> str:
        return self.column.name if self.column is not None else self.name

    @property
    def dropped(self) -> bool:
        col = self.column
        return col is not None and (col.dropped or col.table.dropped)


@dataclass(eq=False)
class ScriptKey:
    """A primary key or unique constraint."""

    name: str | None
    columns: list[ColumnRef]
    source: Statement


@dataclass(eq=False)
class ScriptForeignKey:
    name: str | None
    columns: list[ColumnRef]
    referenced: TableRef
    referenced_columns: list[ColumnRef]
    """Empty when the statement names no columns (the referenced table's primary key)."""
    source: Statement
    line: int = 0


@dataclass(eq=False)
class ScriptCheck:
    name: str | None
    expression: str
    source: Statement


@dataclass(eq=False)
class ScriptTable:
    schema: str
    name: str
    source: Statement
    """The CREATE TABLE, or the first statement that names the table."""
    created: bool
    """True when a CREATE TABLE in the scripts defines it (its column list is complete)."""
    columns: list[ScriptColumn] = field(default_factory=list)
    primary_key: ScriptKey | None = None
    uniques: list[ScriptKey] = field(default_factory=list)
    foreign_keys: list[ScriptForeignKey] = field(default_factory=list)
    checks: list[ScriptCheck] = field(default_factory=list)
    temporary: bool = False
    dropped: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> ScriptColumn | None:
        for col in self.columns:
            if col.name == name and not col.dropped:
                return col
        return None

    @property
    def live_columns(self) -> list[ScriptColumn]:
        return [c for c in self.columns if not c.dropped]


@dataclass(eq=False)
class ScriptIndex:
    name: str | None
    table: TableRef
    unique: bool
    keys: tuple[str, ...]
    """Key expressions as written (normalised by sqlglot): ``owner_id``, ``lower(email)``."""
    columns: list[ColumnRef]
    predicate: str | None
    predicate_columns: list[ColumnRef]
    source: Statement
    dropped: bool = False


@dataclass(eq=False)
class ScriptEnum:
    schema: str
    name: str
    labels: tuple[str, ...]
    source: Statement
    dropped: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(eq=False, slots=True)
class ColumnUse:
    """A statement that names a column: the column must exist in the schema."""

    ref: ColumnRef
    context: str
    """``index``, ``index predicate``, ``primary key``, ``INSERT``, ``UPDATE``..."""
    source: Statement
    line: int = 0
    """File line where the statement names the column."""


@dataclass(eq=False, slots=True)
class ValueWrite:
    """A value of evident type that a statement writes into a column: a default, an INSERT
    value, an UPDATE SET (values whose type is not evident are not recorded)."""

    ref: ColumnRef
    family: str
    """What the value is: ``uuid``, ``integer``, ``timestamp`` or ``boolean``."""
    what: str
    """The value as shown in a finding: ``gen_random_uuid()``, ``42``."""
    context: str
    """``DEFAULT``, ``INSERT``, ``UPDATE``, ``ALTER COLUMN ... TYPE ... USING``."""
    source: Statement
    line: int = 0


@dataclass(eq=False)
class Picture:
    """Everything the scripts say, in the state they leave it."""

    tables: list[ScriptTable] = field(default_factory=list)
    """Every table the scripts name, including dropped ones (see ``dropped``)."""
    indexes: list[ScriptIndex] = field(default_factory=list)
    enums: list[ScriptEnum] = field(default_factory=list)
    uses: list[ColumnUse] = field(default_factory=list)
    writes: list[ValueWrite] = field(default_factory=list)
    table_mentions: dict[str, list[Statement]] = field(default_factory=dict)
    """Current qualified table name -> the first statement that names it (a list of one; kept
    up to date on renames)."""
    mention_counts: dict[str, int] = field(default_factory=dict)
    """Current qualified table name -> how many statements name it."""
    _live: dict[str, ScriptTable] = field(default_factory=dict, repr=False)
    """Tables by qualified name, the latest of each name (see :meth:`table`)."""

    def table(self, name: str) -> ScriptTable | None:
        """A live table by ``schema.name`` or bare name."""
        qualified = _qualify(name)
        table = self._live.get(qualified)
        if table is not None and not table.dropped and table.qualified_name == qualified:
            return table
        return None

    def add_table(self, table: ScriptTable) -> None:
        self.tables.append(table)
        self._live[table.qualified_name] = table

    def renamed(self, table: ScriptTable, old: str) -> None:
        """``table`` was called ``old`` until now."""
        if self._live.get(old) is table:
            del self._live[old]
        self._live[table.qualified_name] = table

    @property
    def live_tables(self) -> list[ScriptTable]:
        return [t for t in self.tables if not t.dropped]

    @property
    def live_indexes(self) -> list[ScriptIndex]:
        return [i for i in self.indexes if not i.dropped]

    @property
    def live_enums(self) -> list[ScriptEnum]:
        return [e for e in self.enums if not e.dropped]


def _qualify(name: str) -> str:
    return name if "." in name else f"{DEFAULT_SCHEMA}.{name}"


def _table_name(node: exp.Expression) -> tuple[str, str]:
    """(schema, name) of a sqlglot Table (or Schema wrapping one)."""
    if isinstance(node, exp.Schema):
        inner = node.this
        if isinstance(inner, exp.Expression):
            node = inner
    if isinstance(node, exp.Table):
        return (node.db or DEFAULT_SCHEMA), node.name
    return DEFAULT_SCHEMA, node.name


def _ident_nodes(nodes: Iterable[exp.Expression]) -> list[exp.Expr]:
    found: list[exp.Expr] = []
    for node in nodes:
        inner = node.this if isinstance(node, exp.Ordered) else node
        if isinstance(inner, exp.Identifier | exp.Column):
            found.append(inner)
    return found


class PictureBuilder:
    """Builds the picture one analysed statement at a time (:meth:`apply`)."""

    def __init__(self) -> None:
        self.picture = Picture()
        self.not_analysed: list[NotAnalysed] = []
        self.statement: Statement | None = None
        """The statement being applied, with its text (for positions)."""
        self.source: Statement | None = None
        """What the facts of that statement remember of it."""
        self._mentioned: dict[str, Statement] = {}
        """The last statement that named each table (a statement is counted once)."""

    # -- helpers -----------------------------------------------------------------------------

    @property
    def stmt(self) -> Statement:
        assert self.source is not None
        return self.source

    def write(self, ref: ColumnRef, value: exp.Expression, context: str, line: int) -> None:
        """Record a value written into a column, when its type is evident."""
        produced = produced_family(value)
        if produced is not None:
            family, what = produced
            self.picture.writes.append(ValueWrite(ref, family, what, context, self.stmt, line))

    def line_of(self, node: exp.Expr | None) -> int:
        """File line of the first identifier in ``node`` (the statement's line if unknown)."""
        if node is not None:
            candidates = [node] if isinstance(node, exp.Identifier) else []
            candidates.extend(node.find_all(exp.Identifier))
            for ident in candidates:
                start = ident.meta.get("start")
                if isinstance(start, int) and self.statement is not None:
                    return self.statement.position(start)[0]
        return self.stmt.line

    def note(self, reason: str) -> None:
        self.not_analysed.append(NotAnalysed(self.stmt, reason))

    def mention(self, table: ScriptTable) -> None:
        name = table.qualified_name
        mentions = self.picture.table_mentions.setdefault(name, [])
        if not mentions:
            mentions.append(self.stmt)
        if self._mentioned.get(name) is not self.stmt:
            self._mentioned[name] = self.stmt
            counts = self.picture.mention_counts
            counts[name] = counts.get(name, 0) + 1

    def table_ref(self, node: exp.Expression) -> TableRef:
        """The table a statement names; a table the scripts never named joins the picture."""
        schema, name = _table_name(node)
        table = self.picture.table(f"{schema}.{name}")
        if table is None:
            table = ScriptTable(schema=schema, name=name, source=self.stmt, created=False)
            self.picture.add_table(table)
        self.mention(table)
        return TableRef(table.qualified_name, table)

    def column_ref(self, table: TableRef, name: str) -> ColumnRef:
        column = table.table.column(name) if table.table is not None else None
        return ColumnRef(table, name, column)

    def use(
        self,
        table: TableRef,
        names: Iterable[str | exp.Expr],
        context: str,
    ) -> list[ColumnRef]:
        """Record uses of columns given by name or by their sqlglot node (for the line)."""
        refs = []
        for item in names:
            name = sys.intern(item if isinstance(item, str) else item.name)
            line = self.stmt.line if isinstance(item, str) else self.line_of(item)
            ref = self.column_ref(table, name)
            self.picture.uses.append(ColumnUse(ref, context, self.stmt, line))
            refs.append(ref)
        return refs

    def use_columns_in(
        self, table: TableRef, node: exp.Expression | None, context: str, aliases: set[str]
    ) -> list[ColumnRef]:
        """Uses of the columns an expression names (unqualified, or qualified by ``aliases``)."""
        if node is None:
            return []
        nodes: dict[str, exp.Column] = {}
        for column in node.find_all(exp.Column):
            qualifier = column.table
            if qualifier and qualifier not in aliases:
                continue
            if column.name:
                nodes.setdefault(column.name, column)
        return self.use(table, list(nodes.values()), context)

    # -- statements --------------------------------------------------------------------------

    def apply(self, parsed: ParsedStatement, source: Statement | None = None) -> str | None:
        """Apply an analysed statement; ``source`` is what its facts remember of it (the
        statement itself by default). Returns why it could not be analysed after all (nested
        too deeply, or a sqlglot feature this version lacks), else ``None``."""
        node = parsed.expression
        if parsed.status != "analysed" or node is None:
            return None
        self.statement = parsed.statement
        self.source = source or parsed.statement
        try:
            self._apply(node)
        except RecursionError:
            return NESTED_TOO_DEEPLY
        except Exception as error:  # a node type or argument this sqlglot version lacks
            return unsupported(error)
        finally:
            self.statement = self.source = None
        return None

    def _apply(self, node: exp.Expr) -> None:
        if isinstance(node, exp.Create):
            kind = str(node.args.get("kind") or "").upper()
            if kind == "TABLE":
                self.create_table(node)
            elif kind == "INDEX":
                self.create_index(node)
            elif kind == "TYPE":
                self.create_enum(node)
            elif kind == "TRIGGER":
                self.create_trigger(node)
        elif isinstance(node, exp.Comment):
            self.comment(node)
        elif isinstance(node, exp.Alter):
            kind = str(node.args.get("kind") or "").upper()
            if kind == "TABLE":
                self.alter_table(node)
            else:
                self.alter_index(node)
        elif isinstance(node, exp.Drop):
            self.drop(node)
        elif isinstance(node, exp.Insert):
            self.insert(node)
        elif isinstance(node, exp.Update):
            self.update(node)
        elif isinstance(node, exp.Delete):
            self.delete(node)
        elif isinstance(node, exp.Grant | exp.Revoke):
            self.grant(node)

    def create_table(self, node: exp.Create) -> None:
        target = node.this
        schema, name = _table_name(target)
        existing = self.picture.table(f"{schema}.{name}")
        # CREATE TABLE IF NOT EXISTS on a table that already exists is a no-op when it runs,
        # but it still declares the table: on a database without it (a fresh one, one restored
        # from an old dump) it is what gets created. So its definition is the one checked.
        if existing is not None:
            existing.dropped = True
        table = ScriptTable(schema=schema, name=name, source=self.stmt, created=True)
        self.picture.add_table(table)
        self.mention(table)
        ref = TableRef(table.qualified_name, table)
        elements = target.expressions if isinstance(target, exp.Schema) else []
        # all columns first, then their constraints: a generated column or a CHECK may name a
        # column defined after it
        columns = [
            (element, self.add_column(ref, element, if_not_exists=False, constraints=False))
            for element in elements
            if isinstance(element, exp.ColumnDef)
        ]
        for element, column in columns:
            if column is not None:
                self.column_constraints(ref, column, element)
        properties = node.args.get("properties")
        for prop in properties.expressions if isinstance(properties, exp.Properties) else []:
            self.table_property(ref, prop)
        for element in elements:
            if isinstance(element, exp.ColumnDef):
                continue
            if isinstance(element, exp.LikeProperty):
                table.created = False
                self.note("CREATE TABLE ... (LIKE ...): the copied columns are not known")
                continue
            self.add_constraint(ref, element)

    def table_property(self, table: TableRef, prop: exp.Expression) -> None:
        """A property of CREATE TABLE: recorded, irrelevant to the comparison, or noted."""
        assert table.table is not None
        if isinstance(prop, exp.TemporaryProperty):
            table.table.temporary = True
        elif isinstance(prop, exp.PartitionedByProperty):
            key = prop.this if isinstance(prop.this, exp.Expression) else None
            self.use_columns_in(table, key, "PARTITION BY key", {table.table.name})
        elif isinstance(prop, exp.PartitionedOfProperty):
            parent = prop.this
            if isinstance(parent, exp.Expression):
                shown = sql_text(parent)
                self.table_ref(parent)
                table.table.created = False
                self.note(
                    f"CREATE TABLE ... PARTITION OF {shown}: the columns come from {shown} and "
                    "are not known"
                )
        elif isinstance(prop, exp.InheritsProperty):
            for parent in prop.expressions:
                self.table_ref(parent)
            table.table.created = False
            self.note(f"CREATE TABLE ... {sql_text(prop)}: the inherited columns are not known")
        elif not _storage_only(prop):
            self.note(f"CREATE TABLE ... {sql_text(prop)[:60]} is not analysed")

    def add_column(
        self,
        table: TableRef,
        node: exp.ColumnDef,
        *,
        if_not_exists: bool,
        constraints: bool = True,
    ) -> ScriptColumn | None:
        """Define the column (and, with ``constraints``, apply its constraints)."""
        assert table.table is not None
        name = node.name
        existing = table.table.column(name)
        if existing is not None and if_not_exists:
            return None
        kind = node.args.get("kind")
        sql_type = from_sqlglot(kind) if isinstance(kind, exp.DataType) else None
        column = ScriptColumn(
            table=table.table,
            name=name,
            type=sql_type,
            source=self.stmt,
            type_source=self.stmt,
            line=self.line_of(node.this),
        )
        if existing is not None:
            existing.dropped = True
        table.table.columns.append(column)
        if constraints:
            self.column_constraints(table, column, node)
        return column

    def column_constraints(
        self, table: TableRef, column: ScriptColumn, node: exp.ColumnDef
    ) -> None:
        """What the column's definition says beyond its type; what is not compared is noted."""
        assert table.table is not None
        ref = ColumnRef(table, column.name, column)
        aliases = {table.table.name}
        for constraint in node.args.get("constraints") or []:
            kind_node = (
                constraint.args.get("kind")
                if isinstance(constraint, exp.ColumnConstraint)
                else constraint
            )
            cname = constraint.name or None
            if isinstance(kind_node, exp.NotNullColumnConstraint):
                column.nullable = bool(kind_node.args.get("allow_null"))
            elif isinstance(kind_node, exp.PrimaryKeyColumnConstraint):
                column.nullable = False
                table.table.primary_key = ScriptKey(cname, [ref], self.stmt)
            elif isinstance(kind_node, exp.UniqueColumnConstraint):
                table.table.uniques.append(ScriptKey(cname, [ref], self.stmt))
            elif isinstance(kind_node, exp.DefaultColumnConstraint):
                value = kind_node.this
                if isinstance(value, exp.Expression):
                    self.set_default(column, ref, value, column.line)
            elif isinstance(kind_node, exp.Reference):
                self.add_reference(table, cname, [ref], kind_node, column.line)
            elif isinstance(kind_node, exp.CheckColumnConstraint):
                self.add_check(table, cname, kind_node)
            elif isinstance(kind_node, exp.ComputedColumnConstraint):
                expression = kind_node.this if isinstance(kind_node.this, exp.Expression) else None
                self.use_columns_in(table, expression, "generated column", aliases)
            elif isinstance(kind_node, exp.GeneratedAsIdentityColumnConstraint):
                generated = kind_node.args.get("expression")
                if isinstance(generated, exp.Expression):
                    self.use_columns_in(table, generated, "generated column", aliases)
                else:
                    column.nullable = False  # an identity column is NOT NULL
            else:
                shown = sql_text(constraint)[:60]
                self.note(f"column {table.table.name}.{column.name}: {shown} is not analysed")

    def set_default(
        self, column: ScriptColumn, ref: ColumnRef, value: exp.Expression, line: int
    ) -> None:
        column.default = sql_text(value)
        column.default_source = self.stmt
        self.write(ref, value, "DEFAULT", line)

    def add_reference(
        self,
        table: TableRef,
        name: str | None,
        columns: list[ColumnRef],
        reference: exp.Reference,
        line: int,
    ) -> None:
        assert table.table is not None
        target = reference.this
        if not isinstance(target, exp.Expression):
            return
        referenced = self.table_ref(target)
        ref_names = _ident_nodes(target.expressions) if isinstance(target, exp.Schema) else []
        ref_columns = self.use(referenced, ref_names, "referenced by a foreign key")
        table.table.foreign_keys.append(
            ScriptForeignKey(name, columns, referenced, ref_columns, self.stmt, line)
        )

    def add_check(self, table: TableRef, name: str | None, node: exp.Expression) -> None:
        assert table.table is not None
        check = node.this if isinstance(node.this, exp.Expression) else node
        self.use_columns_in(table, check, "CHECK constraint", {table.current_name.split(".")[1]})
        table.table.checks.append(ScriptCheck(name, sql_text(check), self.stmt))

    def add_constraint(self, table: TableRef, node: exp.Expression) -> None:
        assert table.table is not None
        name: str | None = None
        parts: list[exp.Expression] = [node]
        if isinstance(node, exp.Constraint):
            name = node.name or None
            parts = list(node.expressions)
        for part in parts:
            if isinstance(part, exp.PrimaryKey):
                refs = self.use(table, _ident_nodes(part.expressions), "primary key")
                table.table.primary_key = ScriptKey(name, refs, self.stmt)
                for ref in refs:
                    if ref.column is not None:
                        ref.column.nullable = False
            elif isinstance(part, exp.UniqueColumnConstraint):
                columns = part.this.expressions if isinstance(part.this, exp.Schema) else []
                refs = self.use(table, _ident_nodes(columns), "unique constraint")
                table.table.uniques.append(ScriptKey(name, refs, self.stmt))
            elif isinstance(part, exp.ForeignKey):
                refs = self.use(table, _ident_nodes(part.expressions), "foreign key")
                reference = part.args.get("reference")
                if isinstance(reference, exp.Reference):
                    self.add_reference(table, name, refs, reference, self.line_of(part))
            elif isinstance(part, exp.CheckColumnConstraint):
                self.add_check(table, name, part)
            else:
                self.note(f"constraint {sql_text(part)[:60]} is not analysed")

    def create_index(self, node: exp.Create) -> None:
        index = node.this
        if not isinstance(index, exp.Index):
            self.note("CREATE INDEX without a recognisable target")
            return
        table_node = index.args.get("table")
        if not isinstance(table_node, exp.Expression):
            self.note("CREATE INDEX without a table")
            return
        table = self.table_ref(table_node)
        aliases = {table.current_name.split(".")[1]}
        params = index.args.get("params")
        keys: list[str] = []
        columns: list[ColumnRef] = []
        predicate: str | None = None
        predicate_columns: list[ColumnRef] = []
        if isinstance(params, exp.IndexParameters):
            for key in params.args.get("columns") or []:
                keys.append(sql_text(key))
                columns.extend(self.use_columns_in(table, key, "index", aliases))
            include = params.args.get("include") or []
            columns.extend(self.use(table, _ident_nodes(include), "index INCLUDE"))
            where = params.args.get("where")
            if isinstance(where, exp.Where):
                predicate = sql_text(where.this)
                predicate_columns = self.use_columns_in(
                    table, where.this, "index predicate", aliases
                )
        self.picture.indexes.append(
            ScriptIndex(
                name=index.name or None,
                table=table,
                unique=bool(node.args.get("unique")),
                keys=tuple(keys),
                columns=columns,
                predicate=predicate,
                predicate_columns=predicate_columns,
                source=self.stmt,
            )
        )

    def create_enum(self, node: exp.Create) -> None:
        schema, name = _table_name(node.this)
        value = node.args.get("expression")
        labels = tuple(
            lit.this
            for lit in (value.expressions if isinstance(value, exp.DataType) else [])
            if isinstance(lit, exp.Literal)
        )
        for enum in self.picture.live_enums:
            if enum.qualified_name == f"{schema}.{name}":
                enum.dropped = True
        self.picture.enums.append(ScriptEnum(schema, name, labels, self.stmt))

    def create_trigger(self, node: exp.Create) -> None:
        """The table, the ``UPDATE OF`` columns and the ``WHEN`` condition's columns."""
        properties = node.args.get("properties")
        triggers = [
            p
            for p in (properties.expressions if isinstance(properties, exp.Properties) else [])
            if isinstance(p, exp.TriggerProperties)
        ]
        table_node = triggers[0].args.get("table") if triggers else None
        if not isinstance(table_node, exp.Expression):
            self.note("CREATE TRIGGER without a recognisable table is not analysed")
            return
        trigger = triggers[0]
        table = self.table_ref(table_node)
        for event in trigger.args.get("events") or []:
            self.use(table, list(event.args.get("columns") or []), "trigger UPDATE OF")
        when = trigger.args.get("when")
        if isinstance(when, exp.Expression):
            self.use_columns_in(table, when, "trigger WHEN", {"new", "old", "NEW", "OLD"})
        execute = trigger.args.get("execute")
        function = execute.this if isinstance(execute, exp.Expression) else None
        shown = f"{function.name}()" if isinstance(function, exp.Expression) else "it runs"
        self.note(f"CREATE TRIGGER: the trigger function {shown} is not analysed")

    def comment(self, node: exp.Comment) -> None:
        """``COMMENT ON COLUMN t.c`` uses the column; ``COMMENT ON TABLE t`` names the table."""
        kind = str(node.args.get("kind") or "").upper()
        target = node.this
        if kind == "TABLE" and isinstance(target, exp.Table):
            self.table_ref(target)
        elif kind == "COLUMN" and isinstance(target, exp.Column) and target.table:
            table_node = exp.Table(this=target.args.get("table"), db=target.args.get("db"))
            self.use(self.table_ref(table_node), [target], "COMMENT ON COLUMN")
        else:
            self.note(f"COMMENT ON {kind}: the object it names is not recognised")

    def alter_table(self, node: exp.Alter) -> None:
        table = self.table_ref(node.this)
        assert table.table is not None
        for action in node.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef):
                self.add_column(table, action, if_not_exists=bool(action.args.get("exists")))
            elif isinstance(action, exp.Drop):
                self.alter_drop(table, action)
            elif isinstance(action, exp.RenameColumn):
                old = action.this.name if isinstance(action.this, exp.Expression) else ""
                new = action.args["to"].name if action.args.get("to") else ""
                column = self.known_column(table, old)
                column.name = new
            elif isinstance(action, exp.AlterRename):
                self.rename_table(table.table, action.this)
            elif isinstance(action, exp.AlterColumn):
                self.alter_column(table, action)
            elif isinstance(action, exp.AddConstraint):
                for constraint in action.expressions:
                    self.add_constraint(table, constraint)
            else:
                text = sql_text(action)
                self.note(f"ALTER TABLE action {text[:60]!r} is not analysed")

    def known_column(self, table: TableRef, name: str) -> ScriptColumn:
        """The picture's column ``name``; one the scripts never defined joins the picture."""
        assert table.table is not None
        column = table.table.column(name)
        if column is None:
            column = ScriptColumn(
                table=table.table,
                name=name,
                type=None,
                source=self.stmt,
                type_source=self.stmt,
                line=self.stmt.line,
                defined=False,
            )
            table.table.columns.append(column)
        return column

    def alter_column(self, table: TableRef, action: exp.AlterColumn) -> None:
        column = self.known_column(table, action.name)
        ref = ColumnRef(table, column.name, column)
        dtype = action.args.get("dtype")
        if isinstance(dtype, exp.DataType):
            column.type = from_sqlglot(dtype)
            column.type_source = self.stmt
            column.line = self.line_of(action.this)
            using = action.args.get("using")
            if isinstance(using, exp.Expression):
                self.write(ref, using, "ALTER COLUMN ... TYPE ... USING", self.line_of(action.this))
            return
        default = action.args.get("default")
        if isinstance(default, exp.Expression):
            self.set_default(column, ref, default, self.line_of(action.this))
            return
        allow_null = action.args.get("allow_null")
        if allow_null is not None:
            column.nullable = bool(allow_null)
            return
        if action.args.get("drop"):
            column.default = None
            column.default_source = self.stmt
            return
        self.note(f"ALTER COLUMN {sql_text(action)[:60]!r} is not analysed")

    def alter_drop(self, table: TableRef, action: exp.Drop) -> None:
        assert table.table is not None
        kind = str(action.args.get("kind") or "").upper()
        names = [t.name for t in action.args.get("tables") or []]
        if kind == "COLUMN":
            for name in names:
                self.known_column(table, name).dropped = True
        elif kind == "CONSTRAINT":
            t = table.table
            for name in names:
                if t.primary_key is not None and t.primary_key.name == name:
                    t.primary_key = None
                t.uniques = [k for k in t.uniques if k.name != name]
                t.foreign_keys = [k for k in t.foreign_keys if k.name != name]
                t.checks = [k for k in t.checks if k.name != name]
        else:
            self.note(f"ALTER TABLE ... DROP {kind} is not analysed")

    def rename_table(self, table: ScriptTable, target: exp.Expression) -> None:
        old = table.qualified_name
        schema, name = _table_name(target)
        table.name = name
        if isinstance(target, exp.Table) and target.db:
            table.schema = schema
        self.picture.renamed(table, old)
        new = table.qualified_name
        mentions = self.picture.table_mentions.pop(old, [])
        if mentions and not self.picture.table_mentions.get(new):
            self.picture.table_mentions[new] = mentions
        counts = self.picture.mention_counts
        counts[new] = counts.get(new, 0) + counts.pop(old, 0)
        if old in self._mentioned:
            self._mentioned[new] = self._mentioned.pop(old)

    def alter_index(self, node: exp.Alter) -> None:
        _, name = _table_name(node.this)
        for action in node.args.get("actions") or []:
            if isinstance(action, exp.AlterRename):
                for index in self.picture.live_indexes:
                    if index.name == name:
                        index.name = action.this.name
            else:
                self.note(f"ALTER INDEX action {sql_text(action)[:60]!r}")

    def drop(self, node: exp.Drop) -> None:
        kind = str(node.args.get("kind") or "").upper()
        for target in node.args.get("tables") or []:
            schema, name = _table_name(target)
            qualified = f"{schema}.{name}"
            if kind == "TABLE":
                table = self.picture.table(qualified)
                if table is not None:
                    table.dropped = True
            elif kind == "INDEX":
                for index in self.picture.live_indexes:
                    if index.name == name:
                        index.dropped = True
            elif kind == "TYPE":
                for enum in self.picture.live_enums:
                    if enum.qualified_name == qualified:
                        enum.dropped = True

    def insert(self, node: exp.Insert) -> None:
        target = node.this
        if not isinstance(target, exp.Expression):
            return
        table = self.table_ref(target)
        aliases = {table.current_name.split(".")[1], "excluded"}
        inner = target.this if isinstance(target, exp.Schema) else target
        if isinstance(inner, exp.Table) and inner.alias:
            aliases.add(inner.alias)
        names = _ident_nodes(target.expressions) if isinstance(target, exp.Schema) else []
        refs = self.use(table, names, "INSERT")
        values = node.expression
        if isinstance(values, exp.Values) and refs:
            for row in values.expressions:
                if isinstance(row, exp.Tuple):
                    line = self.line_of(row)
                    for ref, value in zip(refs, row.expressions, strict=False):
                        self.write(ref, value, "INSERT", line)
        conflict = node.args.get("conflict")
        if isinstance(conflict, exp.OnConflict):
            for key in conflict.args.get("conflict_keys") or []:
                self.use_columns_in(table, key, "INSERT ... ON CONFLICT", aliases)
            for assignment in conflict.expressions:
                if isinstance(assignment, exp.EQ):
                    self.set_clause(table, assignment, "INSERT ... ON CONFLICT DO UPDATE")
        elif not isinstance(values, exp.Values) and not names:
            self.note("INSERT without a column list: the columns are not checked")
        self._returning_uses(node, table, "INSERT ... RETURNING")

    def set_clause(self, table: TableRef, assignment: exp.EQ, context: str) -> None:
        target = assignment.this
        if not isinstance(target, exp.Column):
            return
        (ref,) = self.use(table, [target], context)
        value = assignment.expression
        if isinstance(value, exp.Expression):
            line = self.line_of(target)
            self.write(ref, value, context, line)

    def _where_uses(self, node: exp.Expression, table: TableRef, context: str) -> None:
        """Uses of the target table's columns in a WHERE clause (subqueries left out).

        With other tables in scope (``FROM``, ``USING``) an unqualified name could be any
        table's, so only names qualified by the target table (or its alias) are attributed.
        """
        where = node.args.get("where")
        if not isinstance(where, exp.Where):
            return
        target = node.this
        alias = target.alias if isinstance(target, exp.Table) else ""
        qualifiers = {alias or table.current_name.split(".")[1]}
        others_in_scope = bool(node.args.get("from_") or node.args.get("using"))
        nodes: dict[str, exp.Column] = {}
        for column in where.find_all(exp.Column):
            if column.find_ancestor(exp.Select, exp.Subquery) is not None:
                continue
            qualifier = column.table
            if (qualifier and qualifier not in qualifiers) or (not qualifier and others_in_scope):
                continue
            nodes.setdefault(column.name, column)
        self.use(table, list(nodes.values()), context)

    def update(self, node: exp.Update) -> None:
        if not isinstance(node.this, exp.Expression):
            return
        table = self.table_ref(node.this)
        for assignment in node.expressions:
            if isinstance(assignment, exp.EQ):
                self.set_clause(table, assignment, "UPDATE")
        self._where_uses(node, table, "UPDATE ... WHERE")
        self._returning_uses(node, table, "UPDATE ... RETURNING")

    def delete(self, node: exp.Delete) -> None:
        if not isinstance(node.this, exp.Expression):
            return
        table = self.table_ref(node.this)
        self._where_uses(node, table, "DELETE ... WHERE")
        self._returning_uses(node, table, "DELETE ... RETURNING")

    def _returning_uses(self, node: exp.Expression, table: TableRef, context: str) -> None:
        returning = node.args.get("returning")
        if isinstance(returning, exp.Returning):
            target = node.this.this if isinstance(node.this, exp.Schema) else node.this
            aliases = {table.current_name.split(".")[1]}
            if isinstance(target, exp.Table) and target.alias:
                aliases.add(target.alias)
            self.use_columns_in(table, returning, context, aliases)

    def grant(self, node: exp.Grant | exp.Revoke) -> None:
        """``GRANT``/``REVOKE`` on a table names it; column privileges use the columns."""
        securable = node.args.get("securable")
        if not isinstance(securable, exp.Table):
            return
        verb = "GRANT" if isinstance(node, exp.Grant) else "REVOKE"
        table = self.table_ref(securable)
        for privilege in node.args.get("privileges") or []:
            columns = [c for c in privilege.expressions if isinstance(c, exp.Column)]
            if columns:
                self.use(table, columns, f"{verb} on columns")


def build_picture(parsed: Sequence[ParsedStatement]) -> tuple[Picture, list[NotAnalysed]]:
    """Apply the analysed statements in order; also return the parts that were not analysed."""
    builder = PictureBuilder()
    for item in parsed:
        reason = builder.apply(item)
        if reason is not None:
            builder.not_analysed.append(NotAnalysed(item.statement, reason))
    return builder.picture, builder.not_analysed
