"""Generate a realistic, models-free Alembic project of N revisions (deterministic, seeded).

The revisions create tables (serial and identity keys, foreign keys, CHECK constraints,
server defaults), add and drop columns, create and drop indexes (unique, partial,
multi-column), create enum types and columns using them (the type is dropped again in the
downgrade), change server defaults, and drop tables and constraints. Every revision has a
downgrade that restores the parent's schema exactly, so a correct checker passes on it.

``env.py`` follows the Alembic cookbook: it uses a connection handed in through
``config.attributes["connection"]`` when there is one (an engine there is accepted too, as
pytest-alembic's documentation recommends), and ``sqlalchemy.url`` otherwise.
``pyproject.toml`` carries a ``[tool.schemaguard]`` table, so ``pytest --schemaguard`` runs
in the generated directory.

Usage::

    python benchmarks/gen_alembic_project.py OUTPUT_DIR --revisions 120 [--seed 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

TABLE_NAMES = [
    "customers",
    "accounts",
    "products",
    "categories",
    "suppliers",
    "warehouses",
    "orders",
    "order_items",
    "invoices",
    "payments",
    "shipments",
    "addresses",
    "employees",
    "departments",
    "projects",
    "tasks",
    "tickets",
    "comments",
    "tags",
    "subscriptions",
    "plans",
    "coupons",
    "refunds",
    "reviews",
    "carts",
    "notifications",
    "webhooks",
    "api_keys",
    "audit_events",
    "documents",
    "attachments",
    "contracts",
    "vendors",
    "regions",
    "stores",
    "price_lists",
    "inventory_moves",
    "returns",
    "deliveries",
    "routes",
    "vehicles",
    "drivers",
    "schedules",
    "shifts",
]

STATUS_LABELS = (
    ("new", "active", "suspended", "closed"),
    ("draft", "submitted", "approved", "rejected"),
    ("pending", "paid", "refunded", "failed"),
    ("low", "normal", "high", "urgent"),
    ("queued", "running", "done", "cancelled"),
)

# (column name, kind) pools for added columns
COLUMN_POOL: dict[str, tuple[str, ...]] = {
    "string": ("code", "email", "phone", "reference", "slug", "label", "external_id", "title"),
    "text": ("description", "notes", "body", "summary"),
    "int": ("quantity", "priority", "position", "retries", "score", "rank"),
    "numeric": ("amount", "price", "balance", "total", "discount", "weight"),
    "bool": ("is_active", "archived", "verified", "is_default", "locked"),
    "ts": ("updated_at", "published_at", "due_at", "closed_at", "seen_at"),
    "date": ("start_date", "end_date", "valid_from", "valid_until"),
    "jsonb": ("metadata", "settings", "payload", "attributes"),
    "uuid": ("public_id", "correlation_id", "tracking_id"),
}

DEFAULTS: dict[str, tuple[str, ...]] = {
    "string": ("'n/a'", "''"),
    "int": ("0", "1"),
    "numeric": ("0", "1"),
    "bool": ("false", "true"),
    "ts": ("now()", "CURRENT_TIMESTAMP"),
    "date": ("CURRENT_DATE",),
    "jsonb": ("'{}'::jsonb", "'[]'::jsonb"),
    "uuid": ("gen_random_uuid()",),
}


@dataclass
class Col:
    name: str
    kind: str  # string text int bigint numeric bool ts date jsonb uuid enum pk_serial pk_identity
    nullable: bool = True
    default: str | None = None  # SQL text of the server default
    length: int = 0
    enum: str | None = None  # enum type name

    def type_code(self, enums: dict[str, tuple[str, ...]]) -> str:
        if self.kind == "string":
            return f"sa.String(length={self.length})"
        if self.kind == "enum":
            assert self.enum is not None
            labels = ", ".join(repr(x) for x in enums[self.enum])
            return f"postgresql.ENUM({labels}, name={self.enum!r}, create_type=False)"
        return {
            "text": "sa.Text()",
            "int": "sa.Integer()",
            "bigint": "sa.BigInteger()",
            "numeric": "sa.Numeric(precision=12, scale=2)",
            "bool": "sa.Boolean()",
            "ts": "sa.DateTime(timezone=True)",
            "date": "sa.Date()",
            "jsonb": "postgresql.JSONB(astext_type=sa.Text())",
            "uuid": "sa.Uuid()",
            "pk_serial": "sa.Integer()",
            "pk_identity": "sa.BigInteger()",
        }[self.kind]

    def code(self, enums: dict[str, tuple[str, ...]]) -> str:
        parts = [repr(self.name), self.type_code(enums)]
        if self.kind == "pk_identity":
            parts.append("sa.Identity(always=True)")
        if self.default is not None:
            parts.append(f"server_default=sa.text({self.default!r})")
        parts.append(f"nullable={self.nullable}")
        return f"sa.Column({', '.join(parts)})"


@dataclass
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    where: str | None = None

    def create(self, table: str) -> str:
        extra = ", unique=True" if self.unique else ""
        if self.where:
            extra += f", postgresql_where=sa.text({self.where!r})"
        return f"op.create_index({self.name!r}, {table!r}, {list(self.columns)!r}{extra})"

    def drop(self, table: str) -> str:
        return f"op.drop_index({self.name!r}, table_name={table!r})"


@dataclass
class Check:
    name: str
    column: str
    sql: str


@dataclass
class FK:
    name: str
    column: str
    target: str
    ondelete: str | None


@dataclass
class Table:
    name: str
    columns: list[Col]
    indexes: list[Index] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    fks: list[FK] = field(default_factory=list)

    def used_columns(self) -> set[str]:
        used = {"id"}
        for ix in self.indexes:
            used.update(ix.columns)
            if ix.where:
                used.add(ix.where)
        used.update(c.column for c in self.checks)
        used.update(f.column for f in self.fks)
        return used

    def column(self, name: str) -> Col:
        return next(c for c in self.columns if c.name == name)


class Generator:
    """Builds revisions against an in-memory model of the schema it has created so far."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tables: dict[str, Table] = {}
        self.enums: dict[str, tuple[str, ...]] = {}
        self.enum_counter = 0
        self.table_counter = 0
        self.name_counter = 0

    # ------------------------------------------------------------------ helpers
    def _unique(self, stem: str) -> str:
        self.name_counter += 1
        return f"{stem[:50]}_{self.name_counter}"

    def _new_table_name(self) -> str:
        base = TABLE_NAMES[self.table_counter % len(TABLE_NAMES)]
        rnd = self.table_counter // len(TABLE_NAMES)
        self.table_counter += 1
        return base if rnd == 0 else f"{base}_{rnd + 1}"

    def _incoming(self, table: str) -> list[tuple[str, FK]]:
        return [(t.name, f) for t in self.tables.values() for f in t.fks if f.target == table]

    def _pick_table(self) -> Table:
        return self.tables[self.rng.choice(sorted(self.tables))]

    def _new_column(self, table: Table) -> Col:
        kind = self.rng.choice(sorted(COLUMN_POOL))
        taken = {c.name for c in table.columns}
        names = [n for n in COLUMN_POOL[kind] if n not in taken]
        name = self.rng.choice(names) if names else self._unique(COLUMN_POOL[kind][0])
        col = Col(name, kind)
        if kind == "string":
            col.length = self.rng.choice((32, 64, 120, 255))
        if kind in DEFAULTS and self.rng.random() < 0.6:
            col.default = self.rng.choice(DEFAULTS[kind])
            col.nullable = self.rng.random() < 0.3
        return col

    # ------------------------------------------------------------------ operations
    # Each returns (message, upgrade lines, downgrade lines) or None when not applicable.

    def op_create_table(self) -> tuple[str, list[str], list[str]] | None:
        name = self._new_table_name()
        pk_kind = self.rng.choice(("pk_serial", "pk_identity"))
        cols = [
            Col("id", pk_kind, nullable=False),
            Col("name", "string", nullable=False, length=self.rng.choice((80, 120, 200))),
            Col("created_at", "ts", nullable=False, default="now()"),
        ]
        table = Table(name, cols)
        if self.tables and self.rng.random() < 0.7:
            target = self._pick_table()
            ref_col = f"{target.name}_id"
            ref_kind = "bigint" if target.column("id").kind == "pk_identity" else "int"
            cols.insert(1, Col(ref_col, ref_kind, nullable=self.rng.random() < 0.3))
            ondelete = self.rng.choice((None, "CASCADE", "SET NULL", "RESTRICT"))
            if ondelete == "SET NULL":
                cols[1].nullable = True
            table.fks.append(FK(f"fk_{name}_{ref_col}"[:63], ref_col, target.name, ondelete))
        for _ in range(self.rng.randint(0, 2)):
            cols.append(self._new_column(table))
        numeric = [c for c in cols if c.kind in ("int", "numeric")]
        if numeric and self.rng.random() < 0.5:
            c = numeric[0]
            table.checks.append(Check(f"ck_{name}_{c.name}_nonneg"[:63], c.name, f"{c.name} >= 0"))
        self.tables[name] = table
        up = self._create_table_lines(table)
        if self.rng.random() < 0.5:
            ix = Index(f"ix_{name}_created_at"[:63], ("created_at",))
            table.indexes.append(ix)
            up.append(ix.create(name))
        return f"create {name}", up, [f"op.drop_table({name!r})"]

    def _create_table_lines(self, table: Table) -> list[str]:
        lines = ["op.create_table(", f"    {table.name!r},"]
        for c in table.columns:
            lines.append(f"    {c.code(self.enums)},")
        lines.append(f"    sa.PrimaryKeyConstraint('id', name={('pk_' + table.name)[:63]!r}),")
        for f in table.fks:
            extra = f", ondelete={f.ondelete!r}" if f.ondelete else ""
            lines.append(
                f"    sa.ForeignKeyConstraint([{f.column!r}], ['{f.target}.id'], "
                f"name={f.name!r}{extra}),"
            )
        for ck in table.checks:
            lines.append(f"    sa.CheckConstraint({ck.sql!r}, name={ck.name!r}),")
        lines.append(")")
        return lines

    def op_add_column(self) -> tuple[str, list[str], list[str]] | None:
        table = self._pick_table()
        col = self._new_column(table)
        table.columns.append(col)
        return (
            f"add {col.name} to {table.name}",
            [f"op.add_column({table.name!r}, {col.code(self.enums)})"],
            [f"op.drop_column({table.name!r}, {col.name!r})"],
        )

    def op_create_index(self) -> tuple[str, list[str], list[str]] | None:
        table = self._pick_table()
        indexed = {ix.columns for ix in table.indexes}
        candidates = [
            c for c in table.columns if c.kind not in ("jsonb", "text") and c.name != "id"
        ]
        self.rng.shuffle(candidates)
        for c in candidates:
            cols: tuple[str, ...] = (c.name,)
            if self.rng.random() < 0.25 and len(candidates) > 1:
                other = next(x for x in candidates if x is not c)
                cols = (c.name, other.name)
            if cols in indexed:
                continue
            unique = c.kind in ("string", "uuid") and self.rng.random() < 0.5
            where = None
            bools = [x for x in table.columns if x.kind == "bool"]
            if bools and self.rng.random() < 0.4:
                where = f"{bools[0].name}"
            name = self._unique(f"ix_{table.name}_{'_'.join(cols)}")[:63]
            if unique:
                name = "u" + name
            ix = Index(name, cols, unique, where)
            table.indexes.append(ix)
            return (
                f"index {table.name} {' '.join(cols)}",
                [ix.create(table.name)],
                [ix.drop(table.name)],
            )
        return None

    def op_enum_column(self) -> tuple[str, list[str], list[str]] | None:
        table = self._pick_table()
        labels = STATUS_LABELS[self.enum_counter % len(STATUS_LABELS)]
        self.enum_counter += 1
        stem = "status" if "status" not in {c.name for c in table.columns} else "state"
        enum = f"{table.name}_{stem}"[:50]
        if enum in self.enums:
            enum = self._unique(enum)
        self.enums[enum] = labels
        col = Col(stem, "enum", nullable=False, default=f"'{labels[0]}'", enum=enum)
        if stem in {c.name for c in table.columns}:
            col.name = self._unique(stem)
        table.columns.append(col)
        labels_code = ", ".join(repr(x) for x in labels)
        return (
            f"add {enum} enum",
            [
                f"{enum}_type = postgresql.ENUM({labels_code}, name={enum!r})",
                f"{enum}_type.create(op.get_bind(), checkfirst=False)",
                f"op.add_column({table.name!r}, {col.code(self.enums)})",
            ],
            [
                f"op.drop_column({table.name!r}, {col.name!r})",
                f"postgresql.ENUM({labels_code}, name={enum!r}).drop(op.get_bind(), "
                "checkfirst=False)",
            ],
        )

    def op_check(self) -> tuple[str, list[str], list[str]] | None:
        table = self._pick_table()
        have = {ck.column for ck in table.checks}
        cols = [c for c in table.columns if c.kind in ("int", "numeric") and c.name not in have]
        if not cols:
            return None
        c = self.rng.choice(cols)
        sql = f"{c.name} >= 0" if self.rng.random() < 0.5 else f"{c.name} BETWEEN 0 AND 1000000"
        ck = Check(self._unique(f"ck_{table.name}_{c.name}")[:63], c.name, sql)
        table.checks.append(ck)
        return (
            f"check {table.name} {c.name}",
            [f"op.create_check_constraint({ck.name!r}, {table.name!r}, {sql!r})"],
            [f"op.drop_constraint({ck.name!r}, {table.name!r}, type_='check')"],
        )

    def op_fk(self) -> tuple[str, list[str], list[str]] | None:
        if len(self.tables) < 2:
            return None
        table = self._pick_table()
        target = self._pick_table()
        if target is table:
            return None
        ref_col = f"{target.name}_id"
        if ref_col in {c.name for c in table.columns}:
            return None
        ref_kind = "bigint" if target.column("id").kind == "pk_identity" else "int"
        col = Col(ref_col, ref_kind, nullable=True)
        fk = FK(self._unique(f"fk_{table.name}_{ref_col}")[:63], ref_col, target.name, None)
        fk.ondelete = self.rng.choice((None, "CASCADE", "SET NULL"))
        table.columns.append(col)
        table.fks.append(fk)
        extra = f", ondelete={fk.ondelete!r}" if fk.ondelete else ""
        ix = Index(self._unique(f"ix_{table.name}_{ref_col}")[:63], (ref_col,))
        table.indexes.append(ix)
        return (
            f"link {table.name} to {target.name}",
            [
                f"op.add_column({table.name!r}, {col.code(self.enums)})",
                f"op.create_foreign_key({fk.name!r}, {table.name!r}, {target.name!r}, "
                f"[{ref_col!r}], ['id']{extra})",
                ix.create(table.name),
            ],
            [
                ix.drop(table.name),
                f"op.drop_constraint({fk.name!r}, {table.name!r}, type_='foreignkey')",
                f"op.drop_column({table.name!r}, {ref_col!r})",
            ],
        )

    def op_alter_default(self) -> tuple[str, list[str], list[str]] | None:
        table = self._pick_table()
        cols = [c for c in table.columns if c.kind in DEFAULTS and c.name != "id"]
        if not cols:
            return None
        c = self.rng.choice(cols)
        choices = [d for d in DEFAULTS[c.kind] if d != c.default]
        if not choices:
            return None
        new = self.rng.choice(choices)
        old = c.default
        c.default = new
        existing = f"existing_type={c.type_code(self.enums)}, existing_nullable={c.nullable}"

        def sd(value: str | None) -> str:
            return "None" if value is None else f"sa.text({value!r})"

        return (
            f"default {table.name} {c.name}",
            [f"op.alter_column({table.name!r}, {c.name!r}, server_default={sd(new)}, {existing})"],
            [f"op.alter_column({table.name!r}, {c.name!r}, server_default={sd(old)}, {existing})"],
        )

    def op_drop_column(self) -> tuple[str, list[str], list[str]] | None:
        # Only the last column, so re-adding it in the downgrade restores the column order.
        tables = [
            t
            for t in (self.tables[n] for n in sorted(self.tables))
            if len(t.columns) > 4 and t.columns[-1].name not in t.used_columns()
        ]
        if not tables:
            return None
        table = self.rng.choice(tables)
        col = table.columns.pop()
        return (
            f"drop {table.name} {col.name}",
            [f"op.drop_column({table.name!r}, {col.name!r})"],
            [f"op.add_column({table.name!r}, {col.code(self.enums)})"],
        )

    def op_drop_index(self) -> tuple[str, list[str], list[str]] | None:
        tables = [self.tables[n] for n in sorted(self.tables) if self.tables[n].indexes]
        if not tables:
            return None
        table = self.rng.choice(tables)
        ix = table.indexes.pop(self.rng.randrange(len(table.indexes)))
        return f"drop index {ix.name}", [ix.drop(table.name)], [ix.create(table.name)]

    def op_drop_check(self) -> tuple[str, list[str], list[str]] | None:
        tables = [self.tables[n] for n in sorted(self.tables) if self.tables[n].checks]
        if not tables:
            return None
        table = self.rng.choice(tables)
        ck = self.rng.choice(table.checks)
        table.checks.remove(ck)
        return (
            f"drop check {ck.name}",
            [f"op.drop_constraint({ck.name!r}, {table.name!r}, type_='check')"],
            [f"op.create_check_constraint({ck.name!r}, {table.name!r}, {ck.sql!r})"],
        )

    def op_drop_table(self) -> tuple[str, list[str], list[str]] | None:
        if len(self.tables) < 6:
            return None
        tables = [n for n in sorted(self.tables) if not self._incoming(n)]
        if not tables:
            return None
        name = self.rng.choice(tables)
        table = self.tables.pop(name)
        down = self._create_table_lines(table)
        down += [ix.create(name) for ix in table.indexes]
        return f"drop {name}", [f"op.drop_table({name!r})"], down

    OPS = (
        ("op_create_table", 5),
        ("op_add_column", 6),
        ("op_create_index", 4),
        ("op_enum_column", 2),
        ("op_check", 2),
        ("op_fk", 2),
        ("op_alter_default", 2),
        ("op_drop_column", 2),
        ("op_drop_index", 1),
        ("op_drop_check", 1),
        ("op_drop_table", 1),
    )

    def revision_ops(self, index: int) -> tuple[str, list[str], list[str]]:
        if index == 0:
            parts = [self.op_create_table(), self.op_create_table()]
        else:
            parts = []
            wanted = self.rng.choice((1, 1, 2, 2, 3))
            names = [n for n, _ in self.OPS]
            weights = [w for _, w in self.OPS]
            while len(parts) < wanted:
                result = getattr(self, self.rng.choices(names, weights)[0])()
                if result is not None:
                    parts.append(result)
        messages = [p[0] for p in parts if p is not None]
        up: list[str] = []
        down: list[str] = []
        for p in parts:
            assert p is not None
            up += p[1]
            down = p[2] + down
        return "; ".join(messages), up, down


REVISION_TEMPLATE = '''"""{message}

Revision ID: {revision}
Revises: {down_revision}
Create Date: {date}

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = {revision!r}
down_revision = {down_revision_code}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''

ALEMBIC_INI = """[alembic]
script_location = %(here)s/migrations
prepend_sys_path = .
path_separator = os
sqlalchemy.url = postgresql+psycopg://app:app@localhost:5432/app

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = WARNING
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""

ENV_PY = '''"""Alembic environment: a connection handed in by the caller, else sqlalchemy.url."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = None


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # A Connection (or an Engine) handed in by the caller, e.g. a test harness.
    connectable = config.attributes.get("connection", None)
    if isinstance(connectable, Connection):
        do_run_migrations(connectable)
        return
    engine = connectable or engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        do_run_migrations(connection)
    if connectable is None:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

SCRIPT_MAKO = '''"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''

PYPROJECT = """[project]
name = "bench-app-{n}"
version = "0.0.0"
requires-python = ">=3.10"

[tool.pytest.ini_options]

[tool.schemaguard]
alembic_config = "alembic.ini"
"""


def _indent(lines: list[str]) -> str:
    return "\n".join("    " + line if line else "" for line in lines) or "    pass"


def _slug(message: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40]


def generate(out: Path, revisions: int, *, seed: int = 5) -> list[str]:
    """Write the project into ``out`` (replacing it); return the revision ids, base first."""
    if out.exists():
        shutil.rmtree(out)
    versions = out / "migrations" / "versions"
    versions.mkdir(parents=True)
    (out / "alembic.ini").write_text(ALEMBIC_INI)
    (out / "migrations" / "env.py").write_text(ENV_PY)
    (out / "migrations" / "script.py.mako").write_text(SCRIPT_MAKO)
    (out / "pyproject.toml").write_text(PYPROJECT.format(n=revisions))
    gen = Generator(seed)
    ids_rng = random.Random(seed * 7919 + revisions)
    start = dt.datetime(2024, 1, 8, 9, 30)
    ids: list[str] = []
    down: str | None = None
    for i in range(revisions):
        rev = f"{ids_rng.getrandbits(48):012x}"
        message, up_lines, down_lines = gen.revision_ops(i)
        text = REVISION_TEMPLATE.format(
            message=message,
            revision=rev,
            down_revision=down or "",
            down_revision_code=repr(down),
            date=(start + dt.timedelta(days=3 * i, minutes=17 * i)).isoformat(" "),
            upgrade=_indent(up_lines),
            downgrade=_indent(down_lines),
        )
        (versions / f"{i + 1:04d}_{rev}_{_slug(message)}.py").write_text(text)
        ids.append(rev)
        down = rev
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write (replaced if it exists)")
    parser.add_argument("--revisions", type=int, default=120)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    ids = generate(args.out, args.revisions, seed=args.seed)
    print(f"{args.out}: {len(ids)} revisions, head {ids[-1]}")


if __name__ == "__main__":
    main()
