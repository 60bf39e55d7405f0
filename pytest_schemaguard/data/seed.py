"""Seeded rows: a few rows that fit each table of a schema snapshot, inserted on a connection.

What the rows look like (``docs/checks/data.md`` says the same, for users):

* every table of the snapshot gets rows until it holds ``rows`` of them (a table that already
  holds as many is left alone); tables are filled in foreign-key order, referenced tables
  first;
* in each batch of new rows, the last row (when the batch has two rows or more, or when it is
  the table's only row) holds NULL in every nullable column, the others hold values;
* row ``n`` of a table (counting every row generated for it) holds values made from ``n``:
  ``'<column> <n>'`` for text, ``n`` for numbers, ``2024-01-01`` plus ``n - 1`` days for dates
  and timestamps, enum labels in turn, ``n`` in binary for bit strings, ``[n,n+1)`` for
  ranges, ``'{}'`` for arrays (one element in a unique key, or when a row with an empty one
  is rejected), and so on (:func:`value_text`);
* a foreign key takes the key of an existing row of the referenced table (NULL when that table
  has none and the columns are nullable);
* a column that is generated, an identity column, or has a default and is not part of a unique
  key gets its default;
* simple CHECK constraints are honoured: bounds (``qty > 0``, ``BETWEEN``), lists of allowed
  values (``status IN (...)``) and column order (``ends_at > starts_at``).

A row the server rejects is retried without NULLs, then left out; a table that gets no row at
all is reported in a note (never a failure). This module does not import pytest.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_schemaguard.dbapi import execute_as_is, sql_literal
from pytest_schemaguard.snapshot.model import Column, Snapshot, Table

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "SeedOutcome",
    "SeedRequest",
    "Seeder",
    "check_rules",
    "count_rows",
    "shown_name",
    "value_text",
]

_TEXT = frozenset({"text", "character varying", "character", "citext", "name", "bpchar"})
_INTEGER = frozenset({"smallint", "integer", "bigint"})
_NUMBER = _INTEGER | frozenset({"numeric", "real", "double precision", "money"})
_DAY = datetime.date(2024, 1, 1)
_LENGTH = re.compile(r"\((\d+)\)")
_MODIFIERS = re.compile(r"\([^)]*\)")
_PRECISION = re.compile(r"\((\d+)(?:,\s*(\d+))?\)")


class QualifiedName(str):
    """``schema.name``, remembering which dot separates the two (either may hold dots of its
    own, as ``"app.v2"."orders"`` does); equal to the plain string, and hashed as it."""

    parts: tuple[str, str]

    def __new__(cls, schema: str, name: str) -> QualifiedName:
        self = super().__new__(cls, f"{schema}.{name}")
        self.parts = (schema, name)
        return self


def _parts(qualified: str) -> tuple[str, str]:
    parts = getattr(qualified, "parts", None)
    if parts is not None:
        return parts  # type: ignore[no-any-return]
    schema, _, name = qualified.partition(".")
    return schema, name


def shown_name(qualified: str) -> str:
    """``orders`` for ``public.orders``, ``billing.invoices`` elsewhere."""
    schema, name = _parts(qualified)
    return name if schema == "public" else qualified


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_NAME_PART = re.compile(r'"((?:[^"]|"")*)"|([^."]+)')


def _type_key(name: str) -> str:
    """A type's name as ``format_type`` writes it (``public."OrderStatus"``, ``"my schema"."s's"``)
    in the plain ``schema.name`` form of :func:`~pytest_schemaguard.snapshot.model.qualify`."""
    if '"' not in name:
        return name
    return ".".join(
        plain or quoted.replace('""', '"') for quoted, plain in _NAME_PART.findall(name)
    )


def _relation(qualified: str) -> str:
    schema, name = _parts(qualified)
    return f"{_quote_ident(schema)}.{_quote_ident(name)}"


# ---------------------------------------------------------------------------- CHECK rules


@dataclass
class Rules:
    """What the simple CHECK constraints of a table ask of its columns."""

    low: dict[str, float] = field(default_factory=dict)
    """Smallest allowed value (inclusive) per column."""
    high: dict[str, float] = field(default_factory=dict)
    """Largest allowed value (inclusive) per column."""
    allowed: dict[str, list[str]] = field(default_factory=dict)
    """The values a column may take (``IN (...)``, ``= ANY (ARRAY[...])``)."""
    rank: dict[str, int] = field(default_factory=dict)
    """Offset added to ``n`` so that ``a < b`` holds between two columns of a row."""


def check_rules(table: Table) -> Rules:
    """The rules of ``table``'s CHECK constraints that the seeded values can follow (the
    others are ignored; a row they reject is left out)."""
    rules = Rules()
    less: list[tuple[str, str]] = []
    for constraint in table.check_constraints:
        for atom in _atoms(constraint.definition):
            _rule(atom, rules, less)
    for _ in range(len(less)):  # a few passes settle chains a < b < c
        for low, high in less:
            rules.rank[high] = max(rules.rank.get(high, 0), rules.rank.get(low, 0) + 1)
    return rules


def _atoms(definition: str) -> list[Any]:
    """The conjuncts of a CHECK definition (``CHECK ((a > 0) AND (b < 5))``), parsed."""
    import sqlglot
    from sqlglot import exp

    text = definition.strip()
    if text.upper().endswith(" NOT VALID"):
        text = text[: -len(" NOT VALID")]
    if text.upper().startswith("CHECK"):
        text = text[len("CHECK") :]
    try:
        tree = sqlglot.parse_one(text, read="postgres")
    except Exception:  # an expression sqlglot cannot read: no rule from it
        return []
    out: list[Any] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.And):
            stack.extend([node.left, node.right])
        else:
            out.append(node)
    return out


def _column_of(node: Any) -> str | None:
    from sqlglot import exp

    while isinstance(node, (exp.Paren, exp.Cast)):
        node = node.this
    if isinstance(node, exp.Column) and not node.table:
        return str(node.name)
    return None


def _constant(node: Any) -> str | None:
    """The text of a literal (through casts and a minus sign)."""
    from sqlglot import exp

    while isinstance(node, (exp.Paren, exp.Cast)):
        node = node.this
    if isinstance(node, exp.Neg):
        inner = _constant(node.this)
        return None if inner is None else f"-{inner}"
    if isinstance(node, exp.Literal):
        return str(node.this)
    return None


def _number(node: Any) -> float | None:
    text = _constant(node)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _rule(atom: Any, rules: Rules, less: list[tuple[str, str]]) -> None:
    from sqlglot import exp

    comparisons: dict[type[Any], tuple[str, bool]] = {
        exp.GT: (">", True),
        exp.GTE: (">", False),
        exp.LT: ("<", True),
        exp.LTE: ("<", False),
    }
    flipped = {">": "<", "<": ">"}
    if type(atom) in comparisons:
        op, strict = comparisons[type(atom)]
        left, right = _column_of(atom.left), _column_of(atom.right)
        if left and right:
            less.append((left, right) if op == "<" else (right, left))
            return
        column, bound = (left, atom.right) if left else (right, atom.left)
        if column is None:
            return
        if not left:
            op = flipped[op]
        number = _number(bound)
        if number is None:
            return
        step = 1 if strict else 0
        if op == ">":
            rules.low[column] = max(rules.low.get(column, number + step), number + step)
        else:
            rules.high[column] = min(rules.high.get(column, number - step), number - step)
        return
    if isinstance(atom, exp.Between):
        column = _column_of(atom.this)
        low, high = _number(atom.args.get("low")), _number(atom.args.get("high"))
        if column and low is not None and high is not None:
            rules.low[column] = low
            rules.high[column] = high
        return
    if isinstance(atom, exp.In):
        column = _column_of(atom.this)
        values = [_constant(v) for v in atom.expressions]
        if column and values and all(v is not None for v in values):
            rules.allowed[column] = [v for v in values if v is not None]
        return
    if isinstance(atom, exp.EQ) and isinstance(atom.right, (exp.Any, exp.Paren, exp.Cast)):
        column = _column_of(atom.left)
        found = atom.right.find(exp.Array)
        if column and found is not None:
            values = [_constant(v) for v in found.expressions]
            if values and all(v is not None for v in values):
                rules.allowed[column] = [v for v in values if v is not None]


# ---------------------------------------------------------------------------- values


def value_text(
    column: Column,
    n: int,
    *,
    enums: Mapping[str, tuple[str, ...]],
    domains: Mapping[str, str],
    rules: Rules | None = None,
    unique: bool = False,
    filled: bool = False,
) -> str | None:
    """The text form of the value row ``n`` gets in ``column`` (the server casts it to the
    column's type), or None when no value of its type can be made.  ``unique``: the column is
    part of a unique key (an array then holds one element, so rows differ); ``filled``: an
    array holds one element anyway (a CHECK may ask for a non-empty one)."""
    rules = rules or Rules()
    name = column.name
    if name in rules.allowed:
        choices = rules.allowed[name]
        return choices[(n - 1) % len(choices)]
    n += rules.rank.get(name, 0)
    # a domain: a value of its base type (``character varying(40)``, ``bit(8)``, ``text[]``);
    # a domain over a domain: its base type's, in turn
    typed, base = column.type, column.base_type
    for _ in range(8):
        if _type_key(base) not in domains:
            break
        typed = domains[_type_key(base)]
        base = _MODIFIERS.sub("", typed).strip()
        if base.startswith("interval "):  # ``interval year to month``: its fields apart
            base = "interval"
    if typed.endswith("]"):
        return _array_text(column, typed, base, n, enums, domains, unique or filled)
    labels = enums.get(_type_key(base))
    if labels is not None:
        return labels[(n - 1) % len(labels)] if labels else None
    if base in _NUMBER:
        low = rules.low.get(name)
        high = rules.high.get(name)
        value = float(n)
        if low is not None:
            value = low + (n - 1)
        if high is not None and value > high:
            start = low if low is not None else min(high, 1.0)
            span = int(high - start) + 1
            value = start + ((n - 1) % span) if span > 0 else high
        precision = _PRECISION.search(typed) if base == "numeric" else None
        if precision:  # numeric(p, s): at most p - s digits before the point
            scale = int(precision.group(2) or 0)
            digits = int(precision.group(1)) - scale
            if digits <= 0:  # numeric(4, 4): n ten-thousandths
                return f"{n % 10 ** int(precision.group(1)) / 10**scale:.{scale}f}"
            if abs(value) >= 10**digits:
                value = float((int(abs(value)) - 1) % (10**digits - 1) + 1)
        if base in _INTEGER or value == int(value):
            return str(int(value)) if value == int(value) else str(value)
        return str(value)
    if base in _TEXT:
        text = f"{name} {n}"
        match = _LENGTH.search(typed)
        limit = int(match.group(1)) if match else len(text)
        if len(text) > limit:  # cut to fit, keeping the number
            suffix = str(n)
            text = suffix[-limit:] if limit <= len(suffix) else text[: limit - len(suffix)] + suffix
        return text
    if base in _BITS:
        return _bits_text(base, typed, n)
    day = _DAY + datetime.timedelta(days=n - 1)
    minute = 12 * 60 + n  # 12:01, 12:02, ... (distinct for 720 rows)
    clock = f"{minute // 60 % 24:02d}:{minute % 60:02d}:00"
    stamp = f"{day.isoformat()} 12:00:00"
    after = f"{(day + datetime.timedelta(days=1)).isoformat()} 12:00:00"
    # ranges: [n, n + 1), one day from the row's date; no two rows' ranges overlap
    ranges = {
        "int4": f"[{n},{n + 1})",
        "int8": f"[{n},{n + 1})",
        "num": f"[{n},{n + 1})",
        "date": f"[{day.isoformat()},{(day + datetime.timedelta(days=1)).isoformat()})",
        "ts": f"[{stamp},{after})",
        "tstz": f"[{stamp}+00,{after}+00)",
    }
    simple: dict[str, Callable[[], str]] = {
        "boolean": lambda: "true" if n % 2 else "false",
        "date": day.isoformat,
        "timestamp without time zone": lambda: stamp,
        "timestamp with time zone": lambda: f"{stamp}+00",
        "time without time zone": lambda: clock,
        "time with time zone": lambda: f"{clock}+00",
        "interval": lambda: _interval_text(typed, n),
        "uuid": lambda: f"00000000-0000-4000-8000-{n:012x}",
        "json": lambda: f'{{"n": {n}}}',
        "jsonb": lambda: f'{{"n": {n}}}',
        "jsonpath": lambda: f"$.n{n}",
        "bytea": lambda: f"\\x{n % 256:02x}",
        "inet": lambda: f"10.0.{(n // 256) % 256}.{n % 256}",
        "cidr": lambda: f"10.{n % 256}.0.0/16",
        "macaddr": lambda: f"08:00:2b:00:{(n // 256) % 256:02x}:{n % 256:02x}",
        "macaddr8": lambda: f"08:00:2b:ff:fe:00:{(n // 256) % 256:02x}:{n % 256:02x}",
        "xml": lambda: f"<v>{n}</v>",
        "tsvector": lambda: f"w{n}",
        "tsquery": lambda: f"w{n}",
        "oid": lambda: str(n),
        "pg_lsn": lambda: f"0/{n:X}",
        '"char"': lambda: chr(ord("a") + (n - 1) % 26),
        # geometry: shapes at x = 3n, apart from each other's
        "point": lambda: f"({n},{n})",
        "line": lambda: f"{{1,-1,{n}}}",
        "lseg": lambda: f"[({3 * n},0),({3 * n + 1},1)]",
        "box": lambda: f"({3 * n + 1},1),({3 * n},0)",
        "circle": lambda: f"<({3 * n},0),1>",
        "path": lambda: f"[({3 * n},0),({3 * n + 1},1)]",
        "polygon": lambda: f"(({3 * n},0),({3 * n + 1},0),({3 * n},1))",
    }
    for prefix, text in ranges.items():
        if base == f"{prefix}range":
            return text
        if base == f"{prefix}multirange":
            return f"{{{text}}}"
    make = simple.get(base)
    if make is None:
        make = _extension_value(base.rpartition(".")[2], typed, n)
    return make() if make is not None else None


def _extension_value(base: str, typed: str, n: int) -> Callable[[], str] | None:
    """Values of the types of common extensions (in any schema): ``hstore``, ``ltree`` and
    pgvector's ``vector(d)`` and ``halfvec(d)`` (``d`` times ``n``)."""
    match = _LENGTH.search(typed)
    dimensions = int(match.group(1)) if match else 3
    makers: dict[str, Callable[[], str]] = {
        "hstore": lambda: f'"n"=>"{n}"',
        "ltree": lambda: f"top.n{n}",
        "vector": lambda: "[" + ",".join([str(n)] * dimensions) + "]",
        "halfvec": lambda: "[" + ",".join([str(n)] * dimensions) + "]",
    }
    return makers.get(base)


_BITS = frozenset({"bit", "bit varying"})


def _bits_text(base: str, typed: str, n: int) -> str:
    """``n`` in binary: exactly ``bit(k)``'s k bits (its last k, zero-padded), at most
    ``bit varying(k)``'s k."""
    match = _LENGTH.search(typed)
    if base == "bit":
        width = int(match.group(1)) if match else 1  # plain ``bit`` is ``bit(1)``
        return format(n % (1 << width), f"0{width}b")
    digits = format(n, "b")
    return digits[-int(match.group(1)) :] if match else digits


def _interval_text(typed: str, n: int) -> str:
    """``n`` days; ``n`` years or months for ``interval year``, ``month``, ``year to month``
    (they keep no days)."""
    fields = typed.partition("interval")[2].split()
    if fields[:1] == ["year"] and fields[1:2] != ["to"]:
        return f"{n} years"
    if fields[:1] in (["year"], ["month"]):
        return f"{n} mons"
    return f"{n} days"


def _array_text(
    column: Column,
    typed: str,
    base: str,
    n: int,
    enums: Mapping[str, tuple[str, ...]],
    domains: Mapping[str, str],
    one: bool,
) -> str:
    """``{}``; with ``one`` (a unique key, or a retry), the one-element array of the element
    type's value."""
    if not one:
        return "{}"
    element = Column(column.name, typed[: typed.index("[")], base_type=base.rstrip("[]"))
    text = value_text(element, n, enums=enums, domains=domains)
    if text is None:
        return "{}"
    return '{"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"}'


# ---------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class SeedRequest:
    """What the ``data_hook`` is asked: rows for one table, just before ``upgrading`` runs."""

    schema: str
    table: str
    upgrading: str
    """The revision about to be upgraded on these rows (the database is at its parent)."""
    rows: int
    """How many rows the table lacks (``data_rows`` minus the rows it holds)."""
    columns: tuple[str, ...]
    connection: Connection
    """The migration connection (to look up keys of other tables); insert nothing on it."""


@dataclass
class SeedOutcome:
    """What one seeding round did."""

    added: dict[str, int] = field(default_factory=dict)
    """Rows inserted per table (qualified name)."""
    unseedable: dict[str, str] = field(default_factory=dict)
    """Tables that lacked rows and got none: why (one line)."""
    hook_errors: list[str] = field(default_factory=list)
    """What the ``data_hook`` raised (one line each)."""


def count_rows(conn: Connection, tables: Iterable[str]) -> dict[str, int]:
    """The number of rows of each table (one statement)."""
    names = list(tables)
    if not names:
        return {}
    sql = " UNION ALL ".join(
        f"SELECT {i}, count(*) FROM {_relation(name)}" for i, name in enumerate(names)
    )
    return {names[int(i)]: int(c) for i, c in execute_as_is(conn, sql).all()}


def _fill_order(tables: list[Table]) -> list[Table]:
    """Referenced tables first (a cycle is broken where it is met)."""
    by_name = {t.qualified_name: t for t in tables}
    done: set[str] = set()
    visiting: set[str] = set()
    out: list[Table] = []

    def visit(name: str) -> None:
        if name in done or name in visiting or name not in by_name:
            return
        visiting.add(name)
        for fk in by_name[name].foreign_keys:
            if fk.referenced_table and fk.referenced_table != name:
                visit(fk.referenced_table)
        visiting.discard(name)
        done.add(name)
        out.append(by_name[name])

    for table in tables:
        visit(table.qualified_name)
    return out


Hook = Callable[[SeedRequest], "Iterable[Mapping[str, Any]] | None"]


class Seeder:
    """Fills the tables of a schema with ``rows`` rows each; remembers how many rows it has
    generated per table, so later rows get new values."""

    def __init__(self, rows: int, hook: Hook | None = None, hook_name: str = "data_hook") -> None:
        self.rows = rows
        self.hook = hook
        self.hook_name = hook_name
        self.generated: dict[str, int] = {}
        self.last_error = ""
        """The server's message for the last insert it rejected."""
        self._names: dict[str, str] = {}
        """The tables of the snapshot being seeded, by qualified name (see :meth:`_name`)."""

    def seed(
        self,
        conn: Connection,
        snapshot: Snapshot,
        *,
        upgrading: str,
        counts: Mapping[str, int],
    ) -> SeedOutcome:
        """Top up every table of ``snapshot`` to ``rows`` rows (``counts``: rows they hold)."""
        outcome = SeedOutcome()
        enums = {e.qualified_name: e.labels for e in snapshot.enums}
        enums.update({e.name: e.labels for e in snapshot.enums if e.schema == "public"})
        domains = {d.qualified_name: d.base_type for d in snapshot.domains}
        domains.update({d.name: d.base_type for d in snapshot.domains if d.schema == "public"})
        tables = [t for t in snapshot.tables if t.partition_of is None]
        self._names = {t.qualified_name: QualifiedName(t.schema, t.name) for t in snapshot.tables}
        for table in _fill_order(tables):
            name = table.qualified_name
            lacking = self.rows - counts.get(name, 0)
            if lacking <= 0:
                continue
            if self.hook is not None:
                given = self._from_hook(conn, table, upgrading, lacking, outcome)
                if given is not None:
                    added = self._insert_given(conn, table, given, outcome)
                    if added:
                        outcome.added[name] = added
                    continue
            added, why = self._generate(conn, table, lacking, counts.get(name, 0), enums, domains)
            if added:
                outcome.added[name] = added
            elif why:
                outcome.unseedable[name] = why
        return outcome

    # -------------------------------------------------------------- the hook
    def _from_hook(
        self,
        conn: Connection,
        table: Table,
        upgrading: str,
        lacking: int,
        outcome: SeedOutcome,
    ) -> list[Mapping[str, Any]] | None:
        assert self.hook is not None
        request = SeedRequest(
            table.schema, table.name, upgrading, lacking, table.column_names, conn
        )
        try:
            given = self.hook(request)
        except Exception as exc:
            outcome.hook_errors.append(
                f"{self.hook_name} raised for {shown_name(table.qualified_name)}: "
                f"{type(exc).__name__}: {exc}"
            )
            return None
        return None if given is None else list(given)

    def _insert_given(
        self, conn: Connection, table: Table, given: list[Mapping[str, Any]], outcome: SeedOutcome
    ) -> int:
        from sqlalchemy import column, insert
        from sqlalchemy import table as sa_table

        added = 0
        for row in given:
            target = sa_table(table.name, *(column(k) for k in row), schema=table.schema)
            try:
                with conn.begin_nested():
                    conn.execute(insert(target).values(dict(row)))
                added += 1
            except Exception as exc:
                outcome.unseedable[table.qualified_name] = (
                    f"a row from {self.hook_name} was rejected: {_first_line(exc)}"
                )
        return added

    # -------------------------------------------------------------- generated rows
    def _generate(
        self,
        conn: Connection,
        table: Table,
        lacking: int,
        held: int,
        enums: Mapping[str, tuple[str, ...]],
        domains: Mapping[str, str],
    ) -> tuple[int, str | None]:
        name = table.qualified_name
        rules = check_rules(table)
        references = self._references(conn, table)
        unique = {c for u in (*table.unique_constraints, table.primary_key) if u for c in u.columns}
        for index in table.indexes:
            if index.unique:
                unique.update(index.columns)
        start = max(self.generated.get(name, 0), held)
        rows: list[dict[str, str]] = []
        for i in range(lacking):
            n = start + i + 1
            with_nulls = i == lacking - 1 and (lacking > 1 or held == 0)
            row, why = self._row(table, n, with_nulls, references, unique, rules, enums, domains)
            if row is None:
                return 0, why
            rows.append(row)
        self.generated[name] = start + lacking
        if self._insert(conn, table, rows):
            return lacking, None
        added = 0
        error = ""
        for i, row in enumerate(rows):
            n = start + i + 1
            ok = self._insert(conn, table, [row])
            if not ok and any(v == "NULL" or v.startswith("'{}'::") for v in row.values()):
                # a NULL or an empty array may be what a CHECK rejects: values in every column
                # and one element in every array
                filled, _ = self._row(
                    table, n, False, references, unique, rules, enums, domains, filled=True
                )
                ok = filled is not None and self._insert(conn, table, [filled])
            if ok:
                added += 1
            elif not error:
                error = self.last_error
        return added, (None if added else error)

    def _insert(self, conn: Connection, table: Table, rows: list[dict[str, str]]) -> bool:
        relation = _relation(QualifiedName(table.schema, table.name))
        columns = list(rows[0])
        if columns:
            values = ", ".join("(" + ", ".join(r[c] for c in columns) + ")" for r in rows)
            listed = ", ".join(_quote_ident(c) for c in columns)
            statements = [f"INSERT INTO {relation} ({listed}) VALUES {values}"]
        else:  # every column takes its default
            statements = [f"INSERT INTO {relation} DEFAULT VALUES" for _ in rows]
        try:
            with conn.begin_nested():
                for statement in statements:
                    execute_as_is(conn, statement)
        except Exception as exc:
            self.last_error = _first_line(exc)
            return False
        return True

    def _name(self, qualified: str) -> str:
        """A table of the snapshot being seeded, named as :class:`QualifiedName`."""
        return self._names.get(qualified, qualified)

    def _references(self, conn: Connection, table: Table) -> dict[str, list[tuple[str, ...]]]:
        """Per foreign key (by name): keys of existing rows of the referenced table (text)."""
        out: dict[str, list[tuple[str, ...]]] = {}
        for fk in table.foreign_keys:
            if not fk.referenced_table or not fk.referenced_columns:
                continue
            cols = [_quote_ident(c) for c in fk.referenced_columns]
            sql = (
                "SELECT "
                + ", ".join(f"{c}::text" for c in cols)
                + f" FROM {_relation(self._name(fk.referenced_table))} WHERE "
                + " AND ".join(f"{c} IS NOT NULL" for c in cols)
                + " ORDER BY "
                + ", ".join(str(i + 1) for i in range(len(cols)))
                + " LIMIT 100"
            )
            try:
                with conn.begin_nested():
                    found = execute_as_is(conn, sql).all()
            except Exception:
                found = []
            out[fk.name] = [tuple(str(v) for v in row) for row in found]
        return out

    def _row(
        self,
        table: Table,
        n: int,
        with_nulls: bool,
        references: Mapping[str, list[tuple[str, ...]]],
        unique: set[str],
        rules: Rules,
        enums: Mapping[str, tuple[str, ...]],
        domains: Mapping[str, str],
        filled: bool = False,
    ) -> tuple[dict[str, str] | None, str | None]:
        """One row as SQL expressions per column (omitted columns take their default);
        ``filled``: arrays hold one element instead of none."""
        row: dict[str, str] = {}
        by_fk: dict[str, str] = {}
        for fk in table.foreign_keys:
            keys = references.get(fk.name, [])
            nullable = all(table.column(c).nullable for c in fk.columns if table.has_column(c))
            for position, col in enumerate(fk.columns):
                if col in by_fk or not table.has_column(col):
                    continue
                column = table.column(col)
                if with_nulls and nullable:
                    by_fk[col] = "NULL"
                elif keys:
                    key = keys[(n - 1) % len(keys)]
                    by_fk[col] = f"{sql_literal(key[position])}::{column.type}"
                elif nullable:
                    by_fk[col] = "NULL"
                else:
                    target = shown_name(self._name(fk.referenced_table or ""))
                    return None, f"foreign key {fk.name}: {target} has no rows to reference"
        for column in table.columns:
            if column.generated is not None or column.identity is not None:
                continue
            default = column.default
            if default is not None and "nextval(" in default:
                continue
            if column.name in by_fk:
                row[column.name] = by_fk[column.name]
                continue
            if with_nulls and column.nullable:
                row[column.name] = "NULL"
                continue
            if default is not None and column.name not in unique:
                row[column.name] = "DEFAULT"
                continue
            text = value_text(
                column,
                n,
                enums=enums,
                domains=domains,
                rules=rules,
                unique=column.name in unique,
                filled=filled,
            )
            if text is None:
                if column.nullable:
                    row[column.name] = "NULL"
                    continue
                return None, f"column {column.name} of type {column.type}: no value to generate"
            row[column.name] = f"{sql_literal(text)}::{column.type}"
        return row, None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], dict) and isinstance(args[0].get("M"), str):
        return str(args[0]["M"])  # pg8000: the server's fields
    lines = [line for line in str(orig).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__
