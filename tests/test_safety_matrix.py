"""The safety matrix: one migration operation at a time on an existing table, measured by the
safety observer on the suite's server (PostgreSQL 15 and 18 in CI).

Each case builds the same small schema (committed, as a deployed parent would be), runs one
operation the way a revision does (Alembic's ``op`` on a migration context, inside
``begin_transaction()``), and checks what the observer measured on table ``t``: rewritten or
not, the strongest lock held on it, whether a constraint was validated by scanning it; and the
rules it reported.  The negatives a text linter flags but that are safe are part of it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection, make_url

from pytest_schemaguard.safety.observe import Observation, SafetyObserver, strongest
from pytest_schemaguard.server import PostgresServer

SCHEMA = """
DROP SCHEMA IF EXISTS public CASCADE;
CREATE SCHEMA public;
CREATE TABLE parent (id integer PRIMARY KEY);
INSERT INTO parent SELECT g FROM generate_series(1, 50) g;
CREATE TABLE t (
    id integer PRIMARY KEY,
    name varchar(10),
    amount integer,
    price numeric(10,2),
    note text,
    code integer NOT NULL DEFAULT 0,
    parent_id integer
);
INSERT INTO t SELECT g, 'n' || g, g, g, 'x', g, g FROM generate_series(1, 50) g;
CREATE INDEX t_amount ON t (amount);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
"""

AE = "ACCESS EXCLUSIVE"
SHARE = "SHARE"
SRE = "SHARE ROW EXCLUSIVE"
SUE = "SHARE UPDATE EXCLUSIVE"
TIMEOUT = "no-lock-timeout"


def sql(*statements: str) -> Callable[[Operations], None]:
    def run(op: Operations) -> None:
        for statement in statements:
            op.execute(statement)

    return run


def concurrently(*statements: str) -> Callable[[Operations], None]:
    def run(op: Operations) -> None:
        with op.get_context().autocommit_block():
            for statement in statements:
                op.execute(statement)

    return run


def create_child(op: Operations) -> None:
    op.create_table(
        "child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("t_id", sa.Integer, sa.ForeignKey("t.id"), nullable=False),
        sa.Column("label", sa.Text, nullable=False),
    )
    op.create_index("ix_child_t_id", "child", ["t_id"])
    op.create_check_constraint("ck_child_label", "child", "label <> ''")
    op.alter_column("child", "label", nullable=True)
    op.alter_column("child", "label", new_column_name="title")
    op.drop_column("child", "title")


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[Operations], None]
    rewrite: bool
    lock: str | None
    """The strongest lock held on table ``t`` (None: none held after the statement)."""
    scan: bool
    """A constraint (or NOT NULL) on ``t`` validated by scanning it."""
    rules: frozenset[str]
    prepare: str = ""
    """SQL committed before the revision (the parent's schema)."""


def case(
    name: str,
    run: Callable[[Operations], None],
    rewrite: bool,
    lock: str | None,
    scan: bool,
    *rules: str,
    prepare: str = "",
) -> Any:
    return pytest.param(Case(name, run, rewrite, lock, scan, frozenset(rules), prepare), id=name)


CASES = [
    # adding columns
    case(
        "add_column_nullable",
        lambda op: op.add_column("t", sa.Column("c", sa.Integer)),
        False,
        AE,
        False,
        TIMEOUT,
    ),
    case(
        "add_column_constant_default",
        lambda op: op.add_column("t", sa.Column("c", sa.Integer, server_default="7")),
        False,
        AE,
        False,
        TIMEOUT,
    ),
    case(
        "add_column_not_null_constant_default",
        lambda op: op.add_column(
            "t", sa.Column("c", sa.Text, nullable=False, server_default="new")
        ),
        False,
        AE,
        False,
        TIMEOUT,
    ),
    case(
        "add_column_volatile_default",
        lambda op: op.add_column(
            "t", sa.Column("c", sa.DateTime, server_default=sa.text("clock_timestamp()"))
        ),
        True,
        AE,
        False,
        "table-rewrite",
        TIMEOUT,
    ),
    case(
        "add_column_serial",
        sql("ALTER TABLE t ADD COLUMN s serial"),
        True,
        AE,
        False,
        "table-rewrite",
        TIMEOUT,
    ),
    case(
        "add_column_identity",
        sql("ALTER TABLE t ADD COLUMN i integer GENERATED ALWAYS AS IDENTITY"),
        True,
        AE,
        False,
        "table-rewrite",
        TIMEOUT,
    ),
    case(
        "add_column_stored_generated",
        sql("ALTER TABLE t ADD COLUMN g integer GENERATED ALWAYS AS (amount * 2) STORED"),
        True,
        AE,
        False,
        "table-rewrite",
        TIMEOUT,
    ),
    case(
        "add_column_not_null_without_default",
        lambda op: op.add_column("t", sa.Column("c", sa.Integer, nullable=False)),
        False,
        AE,
        False,
        "backward-incompatible",
        TIMEOUT,
        prepare="DELETE FROM t",
    ),
    # changing types
    case(
        "type_int_to_bigint",
        lambda op: op.alter_column("t", "amount", type_=sa.BigInteger),
        True,
        AE,
        False,
        "table-rewrite",
        TIMEOUT,
    ),
    case(
        "type_int_to_text_using",
        lambda op: op.alter_column("t", "amount", type_=sa.Text, postgresql_using="amount::text"),
        True,
        AE,
        False,
        "table-rewrite",
        TIMEOUT,
    ),
    case(
        "type_varchar_widened",
        lambda op: op.alter_column("t", "name", type_=sa.String(20)),
        False,
        AE,
        False,
        TIMEOUT,
    ),
    case(
        "type_varchar_to_text",
        lambda op: op.alter_column("t", "name", type_=sa.Text),
        False,
        AE,
        False,
        TIMEOUT,
    ),
    case(
        "type_varchar_narrowed",
        lambda op: op.alter_column("t", "name", type_=sa.String(5)),
        True,
        AE,
        False,
        "table-rewrite",
        TIMEOUT,
    ),
    case(
        "type_numeric_precision_widened",
        lambda op: op.alter_column("t", "price", type_=sa.Numeric(12, 2)),
        False,
        AE,
        False,
        TIMEOUT,
    ),
    # nullability and defaults
    case(
        "set_not_null",
        lambda op: op.alter_column("t", "note", nullable=False),
        False,
        AE,
        True,
        "validating-constraint",
        "backward-incompatible",
        TIMEOUT,
    ),
    case(
        "set_not_null_proven_by_check",
        lambda op: op.alter_column("t", "note", nullable=False),
        False,
        AE,
        False,
        "backward-incompatible",
        TIMEOUT,
        prepare="ALTER TABLE t ADD CONSTRAINT note_present CHECK (note IS NOT NULL)",
    ),
    case(
        "drop_not_null",
        lambda op: op.alter_column("t", "code", nullable=True),
        False,
        AE,
        False,
        TIMEOUT,
    ),
    case(
        "set_default",
        lambda op: op.alter_column("t", "amount", server_default="1"),
        False,
        AE,
        False,
        TIMEOUT,
    ),
    # constraints
    case(
        "add_check",
        lambda op: op.create_check_constraint("ck_amount", "t", "amount > 0"),
        False,
        AE,
        True,
        "validating-constraint",
        TIMEOUT,
    ),
    case(
        "add_check_not_valid",
        lambda op: op.create_check_constraint(
            "ck_amount", "t", "amount > 0", postgresql_not_valid=True
        ),
        False,
        AE,
        False,
        TIMEOUT,
    ),
    case(
        "validate_check_later",
        sql("ALTER TABLE t VALIDATE CONSTRAINT ck_amount"),
        False,
        SUE,
        True,
        prepare="ALTER TABLE t ADD CONSTRAINT ck_amount CHECK (amount > 0) NOT VALID",
    ),
    case(
        "add_check_not_valid_and_validate_at_once",
        sql(
            "ALTER TABLE t ADD CONSTRAINT ck_amount CHECK (amount > 0) NOT VALID",
            "ALTER TABLE t VALIDATE CONSTRAINT ck_amount",
        ),
        False,
        AE,
        True,
        "validating-constraint",
        TIMEOUT,
    ),
    case(
        "add_foreign_key",
        lambda op: op.create_foreign_key("fk_parent", "t", "parent", ["parent_id"], ["id"]),
        False,
        SRE,
        True,
        "validating-constraint",
    ),
    case(
        "add_foreign_key_not_valid",
        lambda op: op.create_foreign_key(
            "fk_parent", "t", "parent", ["parent_id"], ["id"], postgresql_not_valid=True
        ),
        False,
        SRE,
        False,
    ),
    case(
        "validate_foreign_key_later",
        sql("ALTER TABLE t VALIDATE CONSTRAINT fk_parent"),
        False,
        SUE,
        True,
        prepare="ALTER TABLE t ADD CONSTRAINT fk_parent FOREIGN KEY (parent_id) "
        "REFERENCES parent (id) NOT VALID",
    ),
    case(
        "add_unique_constraint",
        lambda op: op.create_unique_constraint("uq_name", "t", ["name"]),
        False,
        AE,
        True,
        "validating-constraint",
        TIMEOUT,
    ),
    case(
        "add_unique_using_index",
        sql("ALTER TABLE t ADD CONSTRAINT uq_name UNIQUE USING INDEX uq_name"),
        False,
        AE,
        False,
        TIMEOUT,
        prepare="CREATE UNIQUE INDEX uq_name ON t (name)",
    ),
    case(
        "drop_check",
        lambda op: op.drop_constraint("ck_amount", "t", type_="check"),
        False,
        AE,
        False,
        "access-exclusive",
        prepare="ALTER TABLE t ADD CONSTRAINT ck_amount CHECK (amount > 0)",
    ),
    # indexes
    case(
        "create_index",
        lambda op: op.create_index("ix_note", "t", ["note"]),
        False,
        SHARE,
        False,
        "blocking-index-build",
    ),
    case(
        "create_unique_index",
        lambda op: op.create_index("ix_name", "t", ["name"], unique=True),
        False,
        SHARE,
        False,
        "blocking-index-build",
    ),
    case(
        "create_index_concurrently",
        concurrently("CREATE INDEX CONCURRENTLY ix_note ON t (note)"),
        False,
        None,
        False,
    ),
    case(
        "drop_index",
        lambda op: op.drop_index("t_amount", "t"),
        False,
        AE,
        False,
        "access-exclusive",
    ),
    case(
        "drop_index_concurrently",
        concurrently("DROP INDEX CONCURRENTLY t_amount"),
        False,
        None,
        False,
    ),
    case("reindex", sql("REINDEX INDEX t_amount"), True, SHARE, False, "table-rewrite"),
    # rewrites by maintenance commands
    case("cluster", sql("CLUSTER t USING t_pkey"), True, AE, False, "table-rewrite", TIMEOUT),
    case("vacuum_full", concurrently("VACUUM FULL t"), True, None, False, "table-rewrite"),
    case(
        "set_unlogged", sql("ALTER TABLE t SET UNLOGGED"), True, AE, False, "table-rewrite", TIMEOUT
    ),
    # renames and drops
    case(
        "rename_column",
        lambda op: op.alter_column("t", "note", new_column_name="remark"),
        False,
        AE,
        False,
        "backward-incompatible",
        "access-exclusive",
    ),
    case(
        "rename_table",
        lambda op: op.rename_table("t", "t2"),
        False,
        AE,
        False,
        "backward-incompatible",
        "access-exclusive",
    ),
    case(
        "drop_column",
        lambda op: op.drop_column("t", "note"),
        False,
        AE,
        False,
        "destructive",
        "access-exclusive",
    ),
    case("drop_table", lambda op: op.drop_table("t"), False, AE, False, "destructive", TIMEOUT),
    case(
        "rename_column_with_lock_timeout",
        sql("SET LOCAL lock_timeout = '5s'", "ALTER TABLE t RENAME COLUMN note TO remark"),
        False,
        AE,
        False,
        "backward-incompatible",
    ),
    # other locks
    case(
        "create_trigger",
        sql("CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch()"),
        False,
        SRE,
        False,
    ),
    case("comment_on_table", sql("COMMENT ON TABLE t IS 'things'"), False, SUE, False),
    case(
        "set_statistics",
        sql("ALTER TABLE t ALTER COLUMN amount SET STATISTICS 500"),
        False,
        SUE,
        False,
    ),
    case(
        "create_view",
        sql("CREATE VIEW t_names AS SELECT id, name FROM t"),
        False,
        "ACCESS SHARE",
        False,
    ),
    # objects the revision creates itself are exempt
    case("new_table_referencing_t_with_its_own_changes", create_child, False, SRE, False),
]


@pytest.fixture(scope="module")
def connection(schemaguard_postgres: PostgresServer) -> Iterator[Connection]:
    db = schemaguard_postgres.create_database()
    url = make_url(db.url).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
        schemaguard_postgres.drop_database(db)


def observe(conn: Connection, run: Callable[[Operations], None], prepare: str = "") -> Observation:
    """Build the schema (committed), then run ``run`` as revision ``r1`` would, observed."""
    with conn.begin():
        conn.exec_driver_sql(SCHEMA)
        if prepare:
            conn.exec_driver_sql(prepare)
    observer = SafetyObserver({"r1": __file__})
    context = MigrationContext.configure(conn)
    with context.begin_transaction():
        observer.before_upgrade(conn, "r1")
        run(Operations(context))
        observer.after_upgrade(conn, "r1")
    return observer.observations["r1"]


@pytest.mark.parametrize("c", CASES)
def test_operation(connection: Connection, c: Case) -> None:
    obs = observe(connection, c.run, c.prepare)
    rewrite = any(m.rewritten for m in obs.statements)
    modes = {m.locks["t"] for m in obs.statements if "t" in m.locks}
    names = {v: k for k, v in _MODES.items()}
    lock = strongest(names[m] for m in modes)
    scan = any("t" in m.scanned for m in obs.statements)
    rules = {f.rule for f in obs.findings}
    measured = (rewrite, _MODES[lock] if lock else None, scan, rules)
    assert measured == (c.rewrite, c.lock, c.scan, set(c.rules)), [
        f.render("r1", "here") for f in obs.findings
    ]


from pytest_schemaguard.safety.observe import MODE_NAMES as _MODES  # noqa: E402


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25


def test_finding_names_the_line_and_the_statement(connection: Connection) -> None:
    def upgrade(op: Operations) -> None:
        op.execute("SELECT 1")
        op.alter_column("t", "amount", type_=sa.BigInteger)  # the line

    line = (
        inspect.getsource(upgrade)
        .splitlines()
        .index('        op.alter_column("t", "amount", type_=sa.BigInteger)  # the line')
        + inspect.getsourcelines(upgrade)[1]
    )
    obs = observe(connection, upgrade)
    rewrite = next(f for f in obs.findings if f.rule == "table-rewrite")
    assert rewrite.line == line
    assert rewrite.render("4c1d2e (widen amount)", "versions/4c1d2e_widen.py") == (
        f"revision 4c1d2e (widen amount), versions/4c1d2e_widen.py:{line}: ALTER TABLE t ALTER "
        "COLUMN amount TYPE BIGINT rewrote table t (new relfilenode) holding ACCESS EXCLUSIVE; "
        "on a large table, add a new column, backfill it in batches, and swap [table-rewrite]"
    )
