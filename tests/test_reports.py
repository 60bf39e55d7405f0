"""The CI outputs: the JSON report (validated against the schema shipped in the package), the
Markdown summary and GitHub Actions annotations, on a failing fixture project, serial and
under xdist; never a password."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import psycopg
import pytest
from defects import apply_defect, copy_project
from test_drift import PASSWORD, live_url, migrate

from pytest_schemaguard import __version__
from pytest_schemaguard.report.document import (
    SUMMARY_LINES,
    build_document,
    load_schema,
    markdown_summary,
    workflow_annotations,
)
from pytest_schemaguard.server import Database, PostgresServer
from pytest_schemaguard.urls import mask_url

ROUNDTRIP = "alembic.ini::roundtrip[2f9a6b8d1c44-optional_summary_index_published_at]"
REVISION_FILE = "migrations/versions/2f9a6b8d1c44_optional_summary_index_published_at.py"
HEAD_FILE = "migrations/versions/e61b7c3a0f58_dlq_retry_backoff.py"
DESCRIBED = "2f9a6b8d1c44 (optional summary, index published_at)"
ROUNDTRIP_TITLE = f"roundtrip of {DESCRIBED} ({REVISION_FILE})"
ROUNDTRIP_LINES = [
    f"downgrade of {DESCRIBED} did not restore the schema before it:",
    f"  downgrade of {DESCRIBED} left index public.articles.ix_articles_published_at",
    f"  fix: in downgrade() ({REVISION_FILE}:30), drop the index: "
    'op.drop_index("ix_articles_published_at", table_name="articles")',
    f"upgrade after the downgrade of {DESCRIBED} failed",
    f"file: {REVISION_FILE}",
    "at:   2f9a6b8d1c44_optional_summary_index_published_at.py:25: op.create_index(",
    "SQL:",
    "    CREATE INDEX ix_articles_published_at ON articles (published_at)",
    "error:",
    '    DuplicateTable: relation "ix_articles_published_at" already exists',
]
DRIFT_LINES = [
    "the live database is stamped at e61b7c3a0f58 (dlq retry backoff) (the project's head)",
    "the live database differs from the schema the migrations build at e61b7c3a0f58:",
    "  column public.dlq.note: present only in live",
    "1 schema difference between migrations at e61b7c3a0f58 and live: 1 only in live",
    "the live database differs from the schema the models build:",
    "  column public.dlq.note: present only in live",
    "1 schema difference between models and live: 1 only in live",
]


@pytest.fixture
def live_db(schemaguard_postgres: PostgresServer) -> Iterator[Database]:
    db = schemaguard_postgres.create_database()
    try:
        yield db
    finally:
        schemaguard_postgres.drop_database(db)


def annotation(file: str, line: int, check: str, title: str, lines: list[str]) -> str:
    text = "%0A".join([title, *lines])
    return f"::error file={file},line={line},title=schemaguard {check}::{text}"


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_report_summary_and_annotations_of_a_failing_project(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    inner_dsn: str,
    live_db: Database,
    xdist: tuple[str, ...],
) -> None:
    project = copy_project("newsbot", pytester.path)
    # a live database at head with one column added by hand, reached with a password
    migrate(project, live_db, "head")
    with psycopg.connect(live_db.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE dlq ADD COLUMN note text")
    url = live_url(schemaguard_postgres, live_db)
    apply_defect("downgrade_keeps_index", project)
    monkeypatch.chdir(project)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    # the repository's checkout: annotations name files from there
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--schemaguard",
        f"--schemaguard-dsn={inner_dsn}",
        f"--schemaguard-live-dsn={url}",
        "--schemaguard-report=out/report.json",
        "--schemaguard-summary=out/summary.md",
        "-k",
        "roundtrip or live_drift",
        *xdist,
    )

    result.assert_outcomes(passed=4, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*Traceback*")
    drift_title = (
        f"live_drift: the live database {mask_url(url)} against the migrations at e61b7c3a0f58"
    )
    assert [line for line in result.stdout.lines if line.startswith("::")] == [
        annotation(f"newsbot/{REVISION_FILE}", 30, "roundtrip", ROUNDTRIP_TITLE, ROUNDTRIP_LINES),
        annotation(f"newsbot/{HEAD_FILE}", 1, "live_drift", drift_title, DRIFT_LINES),
    ]
    result.stdout.fnmatch_lines(
        ["schemaguard: wrote report out/report.json", "schemaguard: wrote summary out/summary.md"]
    )

    summary = (project / "out" / "summary.md").read_text()
    assert summary.splitlines() == [
        "## schemaguard: 2 failed, 4 passed",
        "",
        f"PostgreSQL {schemaguard_postgres.version_text}, pytest-schemaguard {__version__}",
        "",
        "| check | passed | failed | skipped |",
        "|---|---:|---:|---:|",
        "| roundtrip | 4 | 1 | 0 |",
        "| live_drift | 0 | 1 | 0 |",
        "",
        "### roundtrip: 1 failed",
        "",
        f"**`{ROUNDTRIP}`** at `{REVISION_FILE}:30`: {ROUNDTRIP_TITLE}",
        "",
        "```text",
        *ROUNDTRIP_LINES,
        "```",
        "",
        "### live_drift: 1 failed",
        "",
        f"**`alembic.ini::live_drift`** at `{HEAD_FILE}:1`: {drift_title}",
        "",
        "```text",
        *DRIFT_LINES,
        "```",
    ]

    text = (project / "out" / "report.json").read_text()
    document = json.loads(text)
    jsonschema.validate(document, load_schema())
    assert PASSWORD not in result.stdout.str() + result.stderr.str() + summary + text
    assert document["postgresql"] == {"version": schemaguard_postgres.version_text}
    assert document["tool"] == {"name": "pytest-schemaguard", "version": __version__}
    assert document["summary"] == {"passed": 4, "failed": 2, "error": 0, "skipped": 0, "total": 6}
    items = {item["nodeid"]: item for item in document["items"]}
    # in collection order, whichever worker ran what
    assert list(items) == [
        "alembic.ini::roundtrip[5b0c1e7a9d21-create_articles_and_dlq]",
        "alembic.ini::roundtrip[8e3f2a4c6b90-add_article_status]",
        "alembic.ini::roundtrip[c47d19e2f035-create_digests_and_pending_publications]",
        ROUNDTRIP,
        "alembic.ini::roundtrip[e61b7c3a0f58-dlq_retry_backoff]",
        "alembic.ini::live_drift",
    ]
    failed = items[ROUNDTRIP]
    assert failed["duration"] > 0
    del failed["duration"]
    assert failed == {
        "nodeid": ROUNDTRIP,
        "check": "roundtrip",
        "revision": "2f9a6b8d1c44",
        "file": REVISION_FILE,
        "line": 30,
        "outcome": "failed",
        "message": ROUNDTRIP_TITLE,
        "lines": ROUNDTRIP_LINES,
        "findings": [
            {
                "kind": "index",
                "object": "public.articles.ix_articles_published_at",
                "attribute": None,
                "category": "only_right",
                "left": {"label": "before the upgrade", "value": None},
                "right": {
                    "label": f"after the downgrade of {DESCRIBED}",
                    "value": "CREATE INDEX ix_articles_published_at ON public.articles "
                    "USING btree (published_at)",
                },
                "message": ROUNDTRIP_LINES[1].strip(),
                "file": None,
                "line": None,
            }
        ],
    }
    drift = items["alembic.ini::live_drift"]
    assert (drift["check"], drift["revision"], drift["message"]) == (
        "live_drift",
        "e61b7c3a0f58",
        drift_title,
    )
    assert [(f["kind"], f["object"], f["left"], f["right"]) for f in drift["findings"]] == [
        (
            "column",
            "public.dlq.note",
            {"label": "migrations at e61b7c3a0f58", "value": None},
            {"label": "live", "value": "text"},
        ),
        (
            "column",
            "public.dlq.note",
            {"label": "models", "value": None},
            {"label": "live", "value": "text"},
        ),
    ]
    passed = items["alembic.ini::roundtrip[5b0c1e7a9d21-create_articles_and_dlq]"]
    assert (passed["outcome"], passed["message"], passed["lines"], passed["findings"]) == (
        "passed",
        None,
        [],
        [],
    )


# ------------------------------------------------------------------------------ pure layers


def record(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "nodeid": "alembic.ini::history",
        "check": "history",
        "revision": None,
        "file": "alembic.ini",
        "line": 1,
        "outcome": "failed",
        "duration": 0.5,
        "message": "history of alembic.ini",
        "lines": [],
        "findings": [],
    }
    item.update(changes)
    return item


def test_annotation_escapes_what_github_reads_as_syntax() -> None:
    item = record(
        file="db/a,b:c.sql", line=7, message="100% wrong", lines=["one", "two\r"], check="x"
    )
    assert workflow_annotations([item, record(outcome="passed")]) == [
        "::error file=db/a%2Cb%3Ac.sql,line=7,title=schemaguard x::100%25 wrong%0Aone%0Atwo%0D"
    ]


def test_a_finding_with_its_own_line_is_annotated_there() -> None:
    finding = {
        "kind": "index",
        "object": "public.tasks.ix_tasks_stopped_at",
        "attribute": None,
        "category": "only_left",
        "left": {"label": "script", "value": "CREATE INDEX ..."},
        "right": {"label": "migrations at head", "value": None},
        "message": "index predicate names stopped_at, which does not exist",
        "file": "db/repair/fix.sql",
        "line": 12,
    }
    item = record(check="legacy_ddl", file="db/repair/fix.sql", findings=[finding])
    assert workflow_annotations([item], place=lambda file: f"backend/{file}") == [
        "::error file=backend/db/repair/fix.sql,line=12,title=schemaguard legacy_ddl::"
        "history of alembic.ini%0Aindex predicate names stopped_at, which does not exist"
    ]


def test_outputs_never_hold_a_password() -> None:
    secret = "pw-" + PASSWORD
    item = record(
        message=f"cannot connect to postgresql://app:{secret}@db/prod",
        lines=[f"host=db password={secret} dbname=prod", f"the server said: {secret} is wrong"],
    )
    document = build_document(
        [item], tool_version="1", postgresql_version="17.2", exit_status=1, secrets=[secret]
    )
    jsonschema.validate(document, load_schema())
    texts = [
        json.dumps(document),
        markdown_summary([item], tool_version="1", postgresql_version=None, secrets=[secret]),
        *workflow_annotations([item], secrets=[secret]),
    ]
    for text in texts:
        assert secret not in text
        assert "postgresql://app:***@db/prod" in text


def test_summary_shows_a_long_failure_in_part() -> None:
    lines = [f"line {n}" for n in range(SUMMARY_LINES + 3)]
    summary = markdown_summary([record(lines=lines)], tool_version="1", postgresql_version="17")
    assert summary.splitlines()[-3:] == [
        f"line {SUMMARY_LINES - 1}",
        "… 3 more line(s) in the JSON report",
        "```",
    ]


def test_the_schema_rejects_a_report_without_its_items() -> None:
    document = build_document([], tool_version="1", postgresql_version=None, exit_status=5)
    jsonschema.validate(document, load_schema())
    del document["items"]
    with pytest.raises(jsonschema.ValidationError, match="'items' is a required property"):
        jsonschema.validate(document, load_schema())


def test_the_shipped_schema_is_a_valid_json_schema() -> None:
    schema = load_schema()
    assert schema["properties"]["format_version"] == {"const": 1}
    jsonschema.Draft202012Validator.check_schema(schema)


def test_a_model_difference_is_reported_and_annotated_at_the_model(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    project = copy_project("timetracker", pytester.path)
    apply_defect("model_uuid_where_integer", project)
    monkeypatch.chdir(project)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--schemaguard",
        f"--schemaguard-dsn={inner_dsn}",
        "--schemaguard-report=report.json",
        "-k",
        "orm_parity",
    )
    result.assert_outcomes(failed=1)
    document = json.loads((project / "report.json").read_text())
    jsonschema.validate(document, load_schema())
    (item,) = document["items"]
    assert item["check"] == "orm_parity"
    message = (
        "column public.time_entries.id: type integer → uuid "
        "(model TimeEntry.id, timetracker/models.py:116)"
    )
    typed = [f for f in item["findings"] if f["attribute"] == "type"]
    assert typed == [
        {
            "kind": "column",
            "object": "public.time_entries.id",
            "attribute": "type",
            "category": "changed",
            "left": {"label": "migrations", "value": "integer"},
            "right": {"label": "models", "value": "uuid"},
            "message": message,
            "file": "timetracker/models.py",
            "line": 116,
        }
    ]
    annotations = [line for line in result.stdout.lines if line.startswith("::")]
    # one annotation per located finding, at the model's line (paths from the workspace)
    at_model = (
        "::error file=timetracker/timetracker/models.py,line=116,title=schemaguard orm_parity::"
    )
    assert [a for a in annotations if a.startswith(at_model)] == [
        at_model + "%0A".join([item["message"], f["message"]])
        for f in item["findings"]
        if f["file"]
    ]
    assert len(annotations) == 3  # the sequence, not in the models, at the item's place
    assert "sequence public.time_entries_id_seq: present only in migrations" in annotations[2]
