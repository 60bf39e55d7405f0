"""The usual fix in downgrade() for each kind of object a downgrade left behind (pure layer)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_schemaguard.migrations.alembic_driver import dependents_fix, fix_for
from pytest_schemaguard.migrations.fixes import downgrade_fix
from pytest_schemaguard.snapshot.compare import Difference
from pytest_schemaguard.snapshot.model import (
    Constraint,
    Enum,
    Function,
    Index,
    Sequence,
    Snapshot,
    Table,
    Trigger,
    View,
)


def left(kind: str, name: str, obj: Any = None, parent: str | None = None) -> Difference:
    """A difference for an object found after the downgrade only."""
    return Difference(
        kind=kind,
        name=name,
        attribute=None,
        before=None,
        after=obj,
        category="only_right",
        message=f"{kind} {name}",
        parent=parent,
        parent_kind="table" if parent else None,
    )


def changed(
    attribute: str,
    before: Any,
    after: Any,
    kind: str = "column",
    name: str = "public.orders.status",
) -> Difference:
    """A difference in one attribute of an object of a table (by default a column of
    ``public.orders``)."""
    return Difference(
        kind=kind,
        name=name,
        attribute=attribute,
        before=before,
        after=after,
        category="changed",
        message=f"{kind} {name}: ...",
        parent=name.rpartition(".")[0],
        parent_kind="table",
    )


def renamed(
    kind: str, name: str, parent: str | None, new: str = "uq_experiments_name", old: str = ""
) -> Difference:
    """The same object under another name after the downgrade (``old``: the name before the
    upgrade, by default the last part of ``name``)."""
    old = old or name.rpartition(".")[2]
    return Difference(
        kind=kind,
        name=name,
        attribute="name",
        before=old,
        after=new,
        category="name",
        message=f"{kind} {name}: name {old} → {new} (same definition)",
        parent=parent,
        parent_kind="table" if parent else None,
    )


@pytest.mark.parametrize(
    ("diff", "fix"),
    [
        (
            left("enum", "public.order_status", Enum("public", "order_status", ("new",))),
            'drop the type after the tables that use it: op.execute("DROP TYPE order_status") '
            'or sa.Enum(name="order_status").drop(op.get_bind())',
        ),
        (
            left("enum", "billing.Order Status", Enum("billing", "Order Status")),
            "drop the type after the tables that use it: "
            "op.execute('DROP TYPE billing.\"Order Status\"') or "
            'sa.Enum(name="Order Status", schema="billing").drop(op.get_bind())',
        ),
        (
            left("table", "public.orders", Table("public", "orders")),
            "drop the table, after the tables whose foreign keys reference it: "
            'op.drop_table("orders")',
        ),
        (
            left("column", "public.orders.email", None, "public.orders"),
            'drop the column: op.drop_column("orders", "email")',
        ),
        (
            left(
                "index",
                "billing.orders.ix_orders_status",
                Index("ix_orders_status", "orders", "CREATE INDEX ..."),
                "billing.orders",
            ),
            'drop the index: op.drop_index("ix_orders_status", table_name="orders", '
            'schema="billing")',
        ),
        (
            left(
                "index",
                "public.orders.uq_number",
                Index("uq_number", "orders", "...", constraint="uq_number"),
                "public.orders",
            ),
            "drop the constraint uq_number, which drops its index",
        ),
        (
            left(
                "constraint",
                "public.orders.fk_orders_customer",
                Constraint("fk_orders_customer", "foreign_key", "FOREIGN KEY ..."),
                "public.orders",
            ),
            'drop the constraint: op.drop_constraint("fk_orders_customer", "orders", '
            'type_="foreignkey")',
        ),
        (
            left(
                "constraint",
                "public.rooms.no_overlap",
                Constraint("no_overlap", "exclude", "EXCLUDE ..."),
                "public.rooms",
            ),
            'drop the constraint: op.drop_constraint("no_overlap", "rooms")',
        ),
        (
            left("sequence", "public.audit_seq", Sequence("public", "audit_seq")),
            "drop the sequence after the columns whose default uses it: "
            'op.execute("DROP SEQUENCE audit_seq")',
        ),
        (
            left(
                "sequence",
                "public.orders_id_seq",
                Sequence("public", "orders_id_seq", owned_by="public.orders.id"),
            ),
            "it belongs to column public.orders.id: dropping that column (or its table) drops it",
        ),
        (
            left(
                "function",
                "public.touch(a integer)",
                Function("public", "touch", "a integer"),
            ),
            "drop the function after the triggers and defaults that call it: "
            'op.execute("DROP FUNCTION touch(a integer)")',
        ),
        (
            left("procedure", "public.archive()", None),
            "drop the procedure after the triggers and defaults that call it: "
            'op.execute("DROP PROCEDURE archive()")',
        ),
        (
            left(
                "trigger",
                "public.orders.trg_touch",
                Trigger("trg_touch", "orders", "CREATE TRIGGER ..."),
                "public.orders",
            ),
            'drop the trigger: op.execute("DROP TRIGGER trg_touch ON orders")',
        ),
        (
            left("view", "public.open_orders", View("public", "open_orders", "SELECT 1")),
            'drop the view before what it reads: op.execute("DROP VIEW open_orders")',
        ),
        (
            left(
                "materialized_view",
                "public.totals",
                View("public", "totals", "SELECT 1", materialized=True),
            ),
            "drop the materialized view before what it reads: "
            'op.execute("DROP MATERIALIZED VIEW totals")',
        ),
        (
            left("extension", "pgcrypto"),
            'drop the extension if this revision created it: op.execute("DROP EXTENSION pgcrypto")',
        ),
        (
            left("schema", "billing"),
            'drop the schema after the objects in it: op.execute("DROP SCHEMA billing")',
        ),
        (
            changed("default", None, "'new'::order_status"),
            'restore the column\'s default: op.alter_column("orders", "status", '
            "server_default=None)",
        ),
        (
            changed("default", "'new'::order_status", None),
            'restore the column\'s default: op.alter_column("orders", "status", '
            "server_default=sa.text(\"'new'::order_status\"))",
        ),
        (
            changed("nullable", True, False),
            'restore the column\'s nullability: op.alter_column("orders", "status", nullable=True)',
        ),
        (
            changed("type", "integer", "bigint"),
            "restore the column's type: "
            'op.execute("ALTER TABLE orders ALTER COLUMN status TYPE integer")',
        ),
        (
            renamed("constraint", "public.experiments.experiments_name_key", "public.experiments"),
            "create it under its name from before the upgrade, experiments_name_key (or rename "
            'it: op.execute("ALTER TABLE experiments RENAME CONSTRAINT uq_experiments_name TO '
            'experiments_name_key"))',
        ),
        (
            renamed("index", "billing.orders.ix_orders_status", "billing.orders", "Ix Status"),
            "create it under its name from before the upgrade, ix_orders_status (or rename it: "
            "op.execute('ALTER INDEX billing.\"Ix Status\" RENAME TO ix_orders_status'))",
        ),
        (
            renamed("sequence", "public.audit_seq", None, "audit_id_seq", old="audit_seq"),
            "create it under its name from before the upgrade, audit_seq (or rename it: "
            'op.execute("ALTER SEQUENCE audit_id_seq RENAME TO audit_seq"))',
        ),
        (
            renamed("domain", "public.email", None, "email_check1", old="email_check"),
            "create it under its name from before the upgrade, email_check (or rename it: "
            'op.execute("ALTER DOMAIN email RENAME CONSTRAINT email_check1 TO email_check"))',
        ),
    ],
    ids=lambda v: f"{v.kind}:{v.category}:{v.name}" if isinstance(v, Difference) else "",
)
def test_the_usual_fix_per_kind(diff: Difference, fix: str) -> None:
    assert downgrade_fix(diff) == fix


def test_what_the_downgrade_dropped_is_recreated_and_grants_have_no_fix() -> None:
    dropped = Difference(
        kind="column",
        name="public.orders.legacy",
        attribute=None,
        before=None,
        after=None,
        category="only_left",
        message="column public.orders.legacy",
        parent="public.orders",
        parent_kind="table",
    )
    assert downgrade_fix(dropped) == (
        "recreate column public.orders.legacy as it was before the upgrade"
    )
    assert downgrade_fix(left("grant", "public.orders.SELECT to app")) is None
    assert downgrade_fix(changed("comment", None, "x")) is None


def _refused(target: str, *details: str) -> str:
    """A step's error as the plugin words PostgreSQL's refusal to drop ``target``."""
    return "\n".join(
        [
            f"DependentObjectsStillExist: cannot drop {target} because other objects depend on it",
            "DETAIL:  " + "\n".join(details),
            "HINT:  Use DROP ... CASCADE to drop the dependent objects too.",
        ]
    )


@pytest.mark.parametrize(
    ("message", "fix"),
    [
        (
            _refused("type st", "column x of table t depends on type st"),
            "drop what depends on type st before this statement: column t.x",
        ),
        (
            _refused("sequence s", "default value for column id of table t depends on sequence s"),
            "drop what depends on sequence s before this statement: the default of column t.id",
        ),
        (
            _refused(
                "table t",
                "view v depends on table t",
                "constraint fk_t on table u depends on table t",
                "constraint fk_t2 on table u depends on table t",
            ),
            "drop what depends on table t before this statement: view v, table u (its "
            "constraint fk_t), table u (its constraint fk_t2)",
        ),
        (
            _refused("function f()", "trigger tr on table t depends on function f()"),
            "drop what depends on function f() before this statement: trigger tr on table t",
        ),
        (
            _refused("column id of table t", "view v depends on column id of table t"),
            "drop what depends on column id of table t before this statement: view v",
        ),
        ('DuplicateTable: relation "t" already exists', None),
    ],
)
def test_a_drop_that_other_objects_depend_on_says_what_to_drop_first(
    message: str, fix: str | None
) -> None:
    assert fix_for(message) == fix
    later = dependents_fix(message, later=True)
    if fix is None:
        assert later is None
    else:
        assert later == fix + "; what a later revision created, its downgrade() should have dropped"


BEFORE = Snapshot(
    tables=(
        Table(
            "billing",
            "orders",
            constraints=(
                Constraint(
                    "fk_orders_customer",
                    "foreign_key",
                    "FOREIGN KEY (customer_id) REFERENCES billing.customers(id) ON DELETE CASCADE",
                ),
            ),
            indexes=(
                Index(
                    "ix_orders_number",
                    "billing.orders",
                    "CREATE UNIQUE INDEX ix_orders_number ON billing.orders USING btree (number)",
                    unique=True,
                ),
            ),
        ),
    )
)


def member_changed(kind: str, name: str, attribute: str, before: Any, after: Any) -> Difference:
    return changed(attribute, before, after, kind, f"billing.orders.{name}")


def enum_changed(before: tuple[str, ...], after: tuple[str, ...]) -> Difference:
    return Difference(
        kind="enum",
        name="public.state_type",
        attribute="labels",
        before=before,
        after=after,
        category="changed",
        message="...",
    )


@pytest.mark.parametrize(
    ("diff", "fix"),
    [
        (
            member_changed("index", "ix_orders_number", "unique", True, False),
            "recreate the index as it was before the upgrade: op.drop_index("
            '"ix_orders_number", table_name="orders", schema="billing"), then op.execute('
            '"CREATE UNIQUE INDEX ix_orders_number ON billing.orders USING btree (number)")',
        ),
        (
            member_changed("constraint", "fk_orders_customer", "on_delete", "cascade", "no action"),
            "recreate the constraint as it was before the upgrade: op.drop_constraint("
            '"fk_orders_customer", "orders", schema="billing", type_="foreignkey"), then '
            'op.execute("ALTER TABLE billing.orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY '
            '(customer_id) REFERENCES billing.customers(id) ON DELETE CASCADE")',
        ),
        # not in the schema before the upgrade (as when the caller has none): no fix
        (member_changed("index", "ix_other", "unique", True, False), None),
        (
            enum_changed(("NEW", "DONE"), ("NEW", "DONE", "CRASHED")),
            "PostgreSQL cannot drop a value from an enum (CRASHED): rename the type, create "
            "state_type again with the values it had before the upgrade, alter each column "
            "that uses it to the new type (USING <column>::text::state_type), then drop the "
            "renamed type; or list the revision in irreversible",
        ),
        (
            enum_changed(("NEW", "IT'S DONE"), ("NEW",)),
            "add the values back: op.execute(\"ALTER TYPE state_type ADD VALUE 'IT''S DONE'\")",
        ),
        (enum_changed(("NEW", "DONE"), ("DONE", "NEW")), None),
    ],
    ids=["index", "constraint", "absent", "enum-added", "enum-removed", "enum-reordered"],
)
def test_what_the_downgrade_changed_is_recreated_as_it_was(
    diff: Difference, fix: str | None
) -> None:
    assert downgrade_fix(diff, BEFORE) == fix


def test_a_changed_index_without_the_schema_before_has_no_fix() -> None:
    diff = member_changed("index", "ix_orders_number", "unique", True, False)
    assert downgrade_fix(diff) is None
