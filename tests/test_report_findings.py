"""Structured findings of the checks that are not schema comparisons, in the JSON report and
as GitHub annotations at their own file:line: ``safety``, ``data``, ``legacy_ddl`` and
``fk_types`` (pytester runs; the report validated against the shipped JSON Schema)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from migration_projects import CUSTOMERS_AND_ORDERS, Rev, write_project

from pytest_schemaguard.report.document import load_schema

PROJECTS = Path(__file__).resolve().parent / "data" / "projects"


def run_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dsn: str, *args: str
) -> tuple[pytest.RunResult, dict[str, Any], list[str]]:
    """``pytest --schemaguard`` with a JSON report, as on GitHub Actions: the result, the
    report (validated against the schema) and the annotation lines."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    result = pytester.runpytest_subprocess(
        "--schemaguard",
        f"--schemaguard-dsn={dsn}",
        "-p",
        "no:cacheprovider",
        "--schemaguard-report=report.json",
        *args,
    )
    document = json.loads((pytester.path / "report.json").read_text())
    jsonschema.validate(document, load_schema())
    annotations = [line for line in result.stdout.lines if line.startswith("::")]
    return result, document, annotations


def copy(name: str, pytester: pytest.Pytester) -> Path:
    shutil.copytree(
        PROJECTS / name,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return pytester.path


V = "migrations/versions/"
WIDEN = f"{V}2b0000000002_widen_amount.py"
INDEX = f"{V}3c0000000003_index_status.py"


def annotated(annotations: list[str], check: str) -> list[tuple[str, str]]:
    """(file, line) of each ``::error`` annotation of ``check``."""
    out = []
    for line in annotations:
        properties = line.removeprefix("::error ").split("::", 1)[0]
        fields = dict(p.split("=", 1) for p in properties.split(","))
        if fields["title"] == f"schemaguard {check}":
            out.append((fields["file"], fields["line"]))
    return out


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_safety_findings_one_per_rule_hit_each_at_its_statement(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    inner_dsn: str,
    xdist: tuple[str, ...],
) -> None:
    project = copy("risky_deploy", pytester)
    # a second blocking index build, on the next line of the same upgrade()
    index = project / INDEX
    index.write_text(
        index.read_text().replace(
            '    op.create_index("ix_orders_status", "orders", ["status"])\n',
            '    op.create_index("ix_orders_status", "orders", ["status"])\n'
            '    op.create_index("ix_orders_amount", "orders", ["amount"])\n',
        )
    )
    result, document, annotations = run_report(
        pytester, monkeypatch, inner_dsn, "-k", "safety", "--schemaguard-safety=fail", *xdist
    )
    result.assert_outcomes(passed=2, failed=5)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*Traceback*")
    items = {item["nodeid"]: item for item in document["items"]}
    widen = items["alembic.ini::safety[2b0000000002-widen_amount]"]
    assert [(f["rule"], f["lock"], f["rewrite"]) for f in widen["findings"]] == [
        ("table-rewrite", "ACCESS EXCLUSIVE", True),
        ("no-lock-timeout", "ACCESS EXCLUSIVE", True),
    ]
    assert widen["findings"][0] == {
        "kind": "table",
        "object": "public.orders",
        "attribute": None,
        "category": "measured",
        "left": {"label": "at the parent", "value": None},
        "right": {
            "label": "upgrade of 2b0000000002 (widen amount)",
            "value": "rewrote table orders (new relfilenode) holding ACCESS EXCLUSIVE",
        },
        "message": widen["lines"][0],
        "file": WIDEN,
        "line": 17,
        "rule": "table-rewrite",
        "revision": "2b0000000002",
        "statement": "ALTER TABLE orders ALTER COLUMN amount TYPE NUMERIC(12, 2)",
        "table": "public.orders",
        "lock": "ACCESS EXCLUSIVE",
        "rewrite": True,
    }
    builds = items["alembic.ini::safety[3c0000000003-index_status]"]["findings"]
    assert [(f["rule"], f["statement"], f["line"], f["lock"], f["rewrite"]) for f in builds] == [
        (
            "blocking-index-build",
            "CREATE INDEX ix_orders_status ON orders (status)",
            16,
            "SHARE",
            False,
        ),
        (
            "blocking-index-build",
            "CREATE INDEX ix_orders_amount ON orders (amount)",
            17,
            "SHARE",
            False,
        ),
    ]
    fk = items["alembic.ini::safety[4d0000000004-orders_customer_fk]"]["findings"]
    assert [(f["rule"], f["table"], f["lock"]) for f in fk] == [
        ("validating-constraint", "public.orders", "SHARE ROW EXCLUSIVE")
    ]
    dropped = items["alembic.ini::safety[6f0000000006-drop_legacy_code]"]["findings"]
    assert [(f["rule"], f["table"], f["lock"]) for f in dropped] == [
        ("destructive", "public.customers", "ACCESS EXCLUSIVE"),
        ("access-exclusive", "public.customers", "ACCESS EXCLUSIVE"),
    ]
    # one annotation per finding, at its statement's line (none at the item's place)
    assert annotated(annotations, "safety") == [
        (WIDEN, "17"),
        (WIDEN, "17"),
        (INDEX, "16"),
        (INDEX, "17"),
        (f"{V}4d0000000004_orders_customer_fk.py", "16"),
        (f"{V}5e0000000005_rename_note.py", "16"),
        (f"{V}5e0000000005_rename_note.py", "16"),
        (f"{V}6f0000000006_drop_legacy_code.py", "17"),
        (f"{V}6f0000000006_drop_legacy_code.py", "17"),
    ]
    assert annotations[3] == (
        f"::error file={INDEX},line=17,title=schemaguard safety::"
        f"safety of 3c0000000003 (index status) ({INDEX})%0A"
        f"revision 3c0000000003 (index status), {INDEX}:17: CREATE INDEX ix_orders_amount ON "
        "orders (amount) built index ix_orders_amount on table orders holding SHARE (writes to "
        "orders wait for the whole build); create it with op.create_index(..., "
        "postgresql_concurrently=True) inside op.get_context().autocommit_block() "
        "[blocking-index-build]"
    )


def test_data_findings_name_the_statement_table_and_rows(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    copy("data_defects", pytester)
    result, document, annotations = run_report(pytester, monkeypatch, inner_dsn, "-k", "data")
    result.assert_outcomes(passed=5, failed=3, warnings=4)
    result.stdout.no_fnmatch_line("*Traceback*")
    items = {item["nodeid"]: item for item in document["items"]}
    status = items["alembic.ini::data[d1a7a0000002-add_status]"]
    assert status["findings"] == [
        {
            "kind": "table",
            "object": "public.orders",
            "attribute": None,
            "category": "failed",
            "left": {"label": "on empty tables", "value": None},
            "right": {
                "label": "on tables with rows",
                "value": 'column "status" of relation "orders" contains null values',
            },
            "message": status["lines"][0],
            "file": f"{V}d1a7a0000002_add_status.py",
            "line": 18,
            "rule": "fails-with-rows",
            "revision": "d1a7a0000002",
            "statement": "ALTER TABLE orders ADD COLUMN status TEXT NOT NULL",
            "table": "public.orders",
            "rows": {"public.customers": 3, "public.orders": 3, "public.tags": 3},
        }
    ]
    phone = items["alembic.ini::data[d1a7a0000005-require_phone]"]["findings"]
    assert [(f["rule"], f["table"], f["statement"], f["line"]) for f in phone] == [
        (
            "fails-with-rows",
            "public.customers",
            "ALTER TABLE customers ALTER COLUMN phone SET NOT NULL",
            18,
        )
    ]
    color = items["alembic.ini::data[d1a7a0000006-tag_color]"]["findings"]
    assert color == [
        {
            "kind": "table",
            "object": "public.tags",
            "attribute": "rows",
            "category": "changed",
            "left": {"label": "after the upgrade", "value": "3"},
            "right": {"label": "after the downgrade", "value": "0"},
            "message": "downgrade of d1a7a0000006 (tag color) deletes rows of tags, which exists "
            "before and after it (3 rows after the upgrade, 0 after the downgrade)",
            "file": f"{V}d1a7a0000006_tag_color.py",
            "line": 20,  # def downgrade
            "rule": "deletes-rows",
            "revision": "d1a7a0000006",
            "table": "public.tags",
            "rows": {"public.tags": 3},
        }
    ]
    # notes of passing items are no findings
    assert [i["nodeid"] for i in document["items"] if i["findings"]] == [
        "alembic.ini::data[d1a7a0000002-add_status]",
        "alembic.ini::data[d1a7a0000005-require_phone]",
        "alembic.ini::data[d1a7a0000006-tag_color]",
    ]
    assert annotated(annotations, "data") == [
        (f"{V}d1a7a0000002_add_status.py", "18"),
        (f"{V}d1a7a0000005_require_phone.py", "18"),
        (f"{V}d1a7a0000006_tag_color.py", "20"),
    ]
    assert annotations[2] == (
        f"::error file={V}d1a7a0000006_tag_color.py,line=20,title=schemaguard data::"
        f"data of d1a7a0000006 (tag color) ({V}d1a7a0000006_tag_color.py)%0A{color[0]['message']}"
    )


FK_REVISIONS = [
    *CUSTOMERS_AND_ORDERS,
    Rev(
        "c3d4e5f6a7b8",
        "b2c3d4e5f6a7",
        "order referrer",
        """
        op.add_column("orders", sa.Column("referrer_id", sa.Integer))
        op.create_foreign_key(
            "fk_orders_referrer", "orders", "customers", ["referrer_id"], ["id"]
        )
        """,
        'op.drop_column("orders", "referrer_id")',
    ),
]
LEGACY_SQL = """\
-- the tables as an old bootstrap script made them
CREATE TABLE customers (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid()
);

CREATE INDEX ix_orders_stopped_at ON orders (stopped_at);
SELECT FROM;
"""


def line_of(path: Path, text: str) -> int:
    (line,) = [n for n, s in enumerate(path.read_text().splitlines(), 1) if text in s]
    return line


def test_legacy_ddl_and_fk_types_findings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    project = write_project(pytester.path, FK_REVISIONS, settings='legacy_ddl = ["db/*.sql"]\n')
    (project / "db").mkdir()
    (project / "db" / "bootstrap.sql").write_text(LEGACY_SQL)
    result, document, annotations = run_report(
        pytester, monkeypatch, inner_dsn, "-k", "legacy_ddl or fk_types"
    )
    result.assert_outcomes(failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*Traceback*")
    items = {item["nodeid"]: item for item in document["items"]}

    # fk_types: both columns and their types, at the line that created the foreign key
    orders = f"{V}0001_b2c3d4e5f6a7.py"
    referrer = f"{V}0002_c3d4e5f6a7b8.py"
    created = line_of(project / orders, "op.create_table(")
    added = line_of(project / referrer, "op.create_foreign_key(")
    assert (created, added) == (14, 15)
    fk_types = items["alembic.ini::fk_types"]
    assert (fk_types["file"], fk_types["line"]) == ("alembic.ini", 1)
    assert fk_types["findings"][0] == {
        "kind": "column",
        "object": "public.orders.customer_id",
        "attribute": "type",
        "category": "changed",
        "left": {"label": "referencing", "value": "integer"},
        "right": {"label": "referenced", "value": "bigint"},
        "message": fk_types["lines"][0].removeprefix("schema: [fk-type] "),
        "file": orders,
        "line": created,
        "rule": "fk-type",
        "revision": "b2c3d4e5f6a7",
        "table": "public.orders",
        "references": "public.customers.id",
    }
    assert [
        (f["object"], f["left"]["value"], f["references"], f["right"]["value"], f["revision"])
        for f in fk_types["findings"]
    ] == [
        ("public.orders.customer_id", "integer", "public.customers.id", "bigint", "b2c3d4e5f6a7"),
        ("public.orders.referrer_id", "integer", "public.customers.id", "bigint", "c3d4e5f6a7b8"),
    ]

    # legacy_ddl: the script's statement against the schema, at the script's line
    legacy = items["alembic.ini::legacy_ddl[db/bootstrap.sql]"]
    findings = legacy["findings"]
    assert [(f["rule"], f["kind"], f["object"], f["category"], f["line"]) for f in findings] == [
        ("default-type", "column", "public.customers.id", "changed", 3),
        ("key-type", "column", "public.customers.id", "changed", 3),
        ("missing-column", "column", "public.orders.stopped_at", "only_left", 6),
        ("parse-error", "statement", "db/bootstrap.sql:7", "unparsed", 7),
    ]
    create = "CREATE TABLE customers ( id UUID PRIMARY KEY DEFAULT gen_random_uuid() )"
    assert findings[1] == {
        "kind": "column",
        "object": "public.customers.id",
        "attribute": "type",
        "category": "changed",
        "left": {"label": "scripts", "value": create},
        "right": {"label": "migrations at head", "value": "public.customers.id is bigint"},
        "message": f"db/bootstrap.sql:3: [key-type] customers.id is uuid here but bigint in the "
        f"schema ({create})",
        "file": "db/bootstrap.sql",
        "line": 3,
        "rule": "key-type",
        "statement": create,
        "table": "public.customers",
    }
    assert findings[2]["right"] == {"label": "migrations at head", "value": None}
    assert [f["message"] for f in findings] == legacy["lines"][:-1]

    # one annotation per finding at its own file and line; none at the items' places
    assert annotated(annotations, "fk_types") == [(orders, "14"), (referrer, "15")]
    assert annotated(annotations, "legacy_ddl") == [
        ("db/bootstrap.sql", "3"),
        ("db/bootstrap.sql", "3"),
        ("db/bootstrap.sql", "6"),
        ("db/bootstrap.sql", "7"),
    ]
    assert annotations[0] == (
        f"::error file={orders},line=14,title=schemaguard fk_types::"
        f"{fk_types['message']}%0A{fk_types['findings'][0]['message']}"
    )
