"""Unit tests of the pure layers: the snapshot model and its JSON, compare, ignore, render."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest

from pytest_schemaguard.snapshot import (
    FORMAT_VERSION,
    Column,
    Constraint,
    Enum,
    Extension,
    Function,
    Index,
    Sequence,
    Snapshot,
    SnapshotFormatError,
    Table,
)
from pytest_schemaguard.snapshot.compare import IgnoreRules, compare, filter_differences
from pytest_schemaguard.snapshot.render import render, should_use_color, summary_line


def _tasks(owner_type: str = "integer", **changes: object) -> Table:
    table = Table(
        schema="public",
        name="tasks",
        columns=(
            Column("id", "integer", nullable=False, position=1, base_type="integer"),
            Column("owner_id", owner_type, position=2, base_type=owner_type),
            Column("title", "text", position=3, base_type="text"),
        ),
        constraints=(
            Constraint(
                "tasks_pkey", "primary_key", "PRIMARY KEY (id)", ("id",), index="tasks_pkey"
            ),
            Constraint(
                "tasks_owner_id_fkey",
                "foreign_key",
                "FOREIGN KEY (owner_id) REFERENCES public.users(id)",
                ("owner_id",),
                referenced_table="public.users",
                referenced_columns=("id",),
                on_update="no action",
                on_delete="no action",
                match="simple",
            ),
        ),
        indexes=(
            Index(
                "ix_tasks_owner",
                "public.tasks",
                "CREATE INDEX ix_tasks_owner ON public.tasks USING btree (owner_id)",
                "ON public.tasks USING btree (owner_id)",
                ("owner_id",),
            ),
        ),
    )
    return dataclasses.replace(table, **changes)  # type: ignore[arg-type]


def _snapshot(*tables: Table, **changes: object) -> Snapshot:
    users = Table(
        "public",
        "users",
        columns=(Column("id", "integer", nullable=False, position=1, base_type="integer"),),
    )
    snapshot = Snapshot(server_version=150000, tables=(users, *tables))
    return dataclasses.replace(snapshot, **changes)  # type: ignore[arg-type]


# -- model and JSON ------------------------------------------------------------------------


def test_json_round_trip_is_exact_and_stable() -> None:
    snapshot = _snapshot(
        _tasks(),
        enums=(Enum("public", "order_status", ("new", "paid")),),
        extensions=(Extension("vector", "public", "0.8.0"),),
        functions=(Function("public", "f", "a integer", result="integer", definition="x"),),
    )
    text = snapshot.to_json()
    again = Snapshot.from_json(text)
    assert again == snapshot
    assert again.to_json() == text
    assert json.loads(text)["format_version"] == FORMAT_VERSION


def test_other_format_version_says_regenerate() -> None:
    data = json.loads(_snapshot().to_json())
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(SnapshotFormatError, match="regenerate"):
        Snapshot.from_json(json.dumps(data))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"format_version": FORMAT_VERSION, "tables": 3}), "malformed"),
        (json.dumps({"format_version": FORMAT_VERSION, "colour": 1}), "unknown field"),
    ],
)
def test_malformed_snapshot_is_refused(text: str, message: str) -> None:
    with pytest.raises(SnapshotFormatError, match=message):
        Snapshot.from_json(text)


def test_ordering_is_canonical_whoever_builds_it() -> None:
    tasks = _tasks()
    shuffled = dataclasses.replace(
        tasks,
        columns=tuple(reversed(tasks.columns)),
        constraints=tuple(reversed(tasks.constraints)),
    )
    assert shuffled == tasks
    assert _snapshot(tasks).table_names == ("public.tasks", "public.users")


def test_lookups() -> None:
    snapshot = _snapshot(_tasks())
    assert snapshot.table("tasks") is snapshot.table("public.tasks")
    tasks = snapshot.table("public.tasks")
    assert tasks.column("owner_id").type == "integer"
    assert snapshot.column("public.tasks.owner_id") == tasks.column("owner_id")
    assert tasks.primary_key is not None and tasks.primary_key.columns == ("id",)
    (fk,) = tasks.foreign_keys
    assert (fk.referenced_table, fk.referenced_columns) == ("public.users", ("id",))
    assert tasks.index("ix_tasks_owner").columns == ("owner_id",)
    assert snapshot.get_table("public.nope") is None
    with pytest.raises(KeyError, match=r"no column 'nope'.*id, owner_id, title"):
        tasks.column("nope")
    with pytest.raises(KeyError, match="no table"):
        snapshot.table("nope")


# -- compare -------------------------------------------------------------------------------


def test_identical_snapshots_have_no_differences() -> None:
    assert compare(_snapshot(_tasks()), _snapshot(_tasks())) == []


def test_column_type_message() -> None:
    (d,) = compare(_snapshot(_tasks("integer")), _snapshot(_tasks("uuid")))
    assert (d.kind, d.name, d.attribute, d.before, d.after, d.category) == (
        "column",
        "public.tasks.owner_id",
        "type",
        "integer",
        "uuid",
        "changed",
    )
    assert d.message == "column public.tasks.owner_id: type integer → uuid"
    assert d.parent == "public.tasks"


def test_presence_messages_use_the_labels() -> None:
    right = _snapshot(_tasks(), enums=(Enum("public", "order_status", ("a",)),))
    (d,) = compare(_snapshot(_tasks()), right)
    assert d.message == "type public.order_status: present only on the right"
    (d,) = compare(right, _snapshot(_tasks()), left_label="migrations", right_label="models")
    assert d.message == "type public.order_status: present only in migrations"
    assert d.category == "only_left"


@pytest.mark.parametrize(
    ("before", "after", "note"),
    [
        (("a", "b"), ("a", "b", "c"), "added c"),
        (("a", "b", "c"), ("a", "c"), "removed b"),
        (("a", "b"), ("a", "x"), "b renamed to x"),
        (("a", "b"), ("b", "a"), "reordered"),
    ],
)
def test_enum_label_changes(before: tuple[str, ...], after: tuple[str, ...], note: str) -> None:
    (d,) = compare(
        _snapshot(enums=(Enum("public", "e", before),)),
        _snapshot(enums=(Enum("public", "e", after),)),
    )
    assert d.attribute == "labels"
    assert d.message.endswith(f"({note})")


def test_constraint_differing_only_in_name_is_a_name_difference() -> None:
    left = _tasks()
    renamed = dataclasses.replace(
        left,
        constraints=tuple(
            dataclasses.replace(c, name="fk_tasks_owner") if c.kind == "foreign_key" else c
            for c in left.constraints
        ),
    )
    (d,) = compare(_snapshot(left), _snapshot(renamed))
    assert d.name_only and d.kind == "constraint"
    assert d.message == (
        "constraint public.tasks.tasks_owner_id_fkey: "
        "name tasks_owner_id_fkey → fk_tasks_owner (same definition)"
    )
    assert compare(_snapshot(left), _snapshot(renamed), ignore=["constraint_name"]) == []
    assert compare(_snapshot(left), _snapshot(renamed), ignore=["names"]) == []
    assert compare(_snapshot(left), _snapshot(renamed), ignore=["index_name"]) == [d]


def test_index_matched_by_definition() -> None:
    left = _tasks()
    (index,) = left.indexes
    renamed = dataclasses.replace(
        left,
        indexes=(
            dataclasses.replace(
                index,
                name="tasks_owner_id_idx",
                definition=index.definition.replace("ix_tasks_owner", "tasks_owner_id_idx"),
            ),
        ),
    )
    (d,) = compare(_snapshot(left), _snapshot(renamed))
    assert (d.kind, d.attribute, d.category) == ("index", "name", "name")


def test_column_order_is_its_own_category() -> None:
    left = _tasks()
    moved = dataclasses.replace(
        left,
        columns=tuple(
            dataclasses.replace(c, position={"id": 1, "owner_id": 3, "title": 2}[c.name])
            for c in left.columns
        ),
    )
    (d,) = compare(_snapshot(left), _snapshot(moved))
    assert d.category == "column_order"
    assert d.message == "table public.tasks: column order id, owner_id, title → id, title, owner_id"
    assert compare(_snapshot(left), _snapshot(moved), ignore=["column_order"]) == []


def test_ignore_patterns() -> None:
    audit = Table("public", "audit_log", columns=(Column("id", "integer", position=1),))
    left = _snapshot(_tasks())
    right = _snapshot(
        _tasks("uuid"),
        dataclasses.replace(audit),
        extensions=(Extension("vector", "public", "0.8.0"),),
        enums=(Enum("public", "status", ("a",)),),
    )
    everything = compare(left, right)
    assert {d.key for d in everything} == {
        "table:public.audit_log",
        "column:public.tasks.owner_id",
        "extension:vector",
        "enum:public.status",
    }
    kept = filter_differences(everything, ["table:audit_*", "extension:*", "type:public.*"])
    assert [d.key for d in kept] == ["column:public.tasks.owner_id"]
    # ignoring a table ignores what is on it
    assert filter_differences(everything, ["table:tasks"]) == [
        d for d in everything if d.parent != "public.tasks"
    ]
    assert filter_differences(everything, ["column:*.owner_id"]) == [
        d for d in everything if d.kind != "column"
    ]


def test_ignoring_a_table_ignores_the_sequences_its_columns_own() -> None:
    audit = Table("public", "audit_log", columns=(Column("id", "integer", position=1),))
    owned = Sequence("public", "audit_log_id_seq", owned_by="public.audit_log.id")
    loose = Sequence("public", "audit_numbers")
    everything = compare(_snapshot(), _snapshot(audit, sequences=(owned, loose)))
    assert {d.key for d in everything} == {
        "table:public.audit_log",
        "sequence:public.audit_log_id_seq",
        "sequence:public.audit_numbers",
    }
    kept = filter_differences(everything, ["table:audit_*"])
    assert [d.key for d in kept] == ["sequence:public.audit_numbers"]


@pytest.mark.parametrize("pattern", ["audit_*", "tabel:audit_*", "table:", "column-order"])
def test_invalid_ignore_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid schema ignore pattern"):
        IgnoreRules.from_patterns([pattern])


def test_function_definition_is_the_fallback() -> None:
    f = Function("public", "f", "", result="integer", body="select 1", definition="A")
    (d,) = compare(
        _snapshot(functions=(f,)),
        _snapshot(functions=(dataclasses.replace(f, definition="B"),)),
    )
    assert d.attribute == "definition"
    # a more specific attribute is reported instead of the whole definition
    (d,) = compare(
        _snapshot(functions=(f,)),
        _snapshot(functions=(dataclasses.replace(f, volatility="stable", definition="B"),)),
    )
    assert (d.attribute, d.before, d.after) == ("volatility", "volatile", "stable")


# -- render --------------------------------------------------------------------------------


def test_render_groups_per_object_with_minus_plus_lines() -> None:
    left = _snapshot(_tasks())
    right = _snapshot(_tasks("uuid"), enums=(Enum("public", "status", ("a", "b")),))
    text = render(compare(left, right), left_label="migrations", right_label="models")
    assert text.splitlines() == [
        "--- migrations",
        "+++ models",
        "+ type public.status",
        "+     labels: a, b",
        "table public.tasks",
        "  - column owner_id type: integer",
        "  + column owner_id type: uuid",
        "2 schema differences between migrations and models: 1 only in models, 1 changed",
    ]
    assert "\x1b[" not in text


def test_render_colour_only_when_asked() -> None:
    diffs = compare(_snapshot(_tasks()), _snapshot(_tasks("uuid")))
    coloured = render(diffs, color=True)
    assert "\x1b[31m  - column owner_id type: integer" in coloured
    assert "\x1b[32m  + column owner_id type: uuid" in coloured


def test_render_multiline_definitions_as_a_diff() -> None:
    f = Function("public", "f", "", body="line 1\nline 2\nline 3")
    diffs = compare(
        _snapshot(functions=(f,)),
        _snapshot(functions=(dataclasses.replace(f, body="line 1\nline two\nline 3"),)),
    )
    lines = render(diffs, header=False).splitlines()
    assert lines[:2] == ["function public.f()", "  body:"]
    assert "  - line 2" in lines and "  + line two" in lines
    assert "    line 1" in lines


def test_summary_line() -> None:
    assert summary_line([]) == "no schema differences between left and right"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_should_use_color() -> None:
    assert should_use_color(_Tty(), env={}) is True
    assert should_use_color(_Tty(), env={"NO_COLOR": ""}) is False
    assert should_use_color(_Tty(), env={"NO_COLOR": "1"}) is False
    assert should_use_color(io.StringIO(), env={}) is False
