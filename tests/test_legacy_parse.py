"""Parsing legacy statements into bins, and the schema picture the scripts build."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_schemaguard.legacy import analyse_files, analyse_sql, expand_globs
from pytest_schemaguard.legacy.parse import parse_statement
from pytest_schemaguard.legacy.picture import Picture, ScriptTable
from pytest_schemaguard.sqltext import split_file, split_sql

DATA = Path(__file__).parent / "data" / "legacy"


def _expectations() -> list[tuple[int, str, str]]:
    """(line of the statement, status, reason part) from the ``-- expect:`` comments."""
    lines = (DATA / "bins.sql").read_text(encoding="utf-8").splitlines()
    found = []
    for number, line in enumerate(lines, start=1):
        if line.startswith("-- expect:"):
            status, _, reason = line.removeprefix("-- expect:").partition("|")
            found.append((number + 1, status.strip(), reason.strip()))
    return found


EXPECTATIONS = _expectations()


def test_every_expectation_names_a_statement() -> None:
    result = split_file(DATA / "bins.sql", root=DATA)
    assert [s.line for s in result.statements] == [line for line, _, _ in EXPECTATIONS]


@pytest.mark.parametrize(
    ("line", "status", "reason"), EXPECTATIONS, ids=[f"line{e[0]}" for e in EXPECTATIONS]
)
def test_statement_lands_in_its_bin(line: int, status: str, reason: str) -> None:
    result = split_file(DATA / "bins.sql", root=DATA)
    (statement,) = [s for s in result.statements if s.line == line]
    parsed = parse_statement(statement)
    assert parsed.status == status, parsed.reason
    if reason:
        assert parsed.reason is not None
        assert reason in parsed.reason
    if status == "error":
        assert parsed.expression is None
        assert parsed.reason
        assert parsed.error_line == line
    if status in ("analysed", "irrelevant"):
        assert parsed.expression is not None


def test_parse_error_position_is_in_file_coordinates() -> None:
    sql = "SELECT 1;\n\nINSERT INTO t (a\n  VALUES (1);"
    analysis = analyse_sql(sql, file="x.sql")
    (error,) = analysis.parse_errors
    assert error.statement.line == 3
    assert error.error_line == 4
    assert error.error_column is not None


def test_lexically_broken_statement_is_an_error_not_a_crash() -> None:
    analysis = analyse_sql("SELECT 1;\nINSERT INTO t VALUES ('open);\n", file="x.sql")
    (error,) = analysis.parse_errors
    assert error.reason is not None
    assert error.reason.startswith("unterminated string starting at line 2")


def test_analysis_summary_counts_every_bin() -> None:
    analysis = analyse_files([DATA / "bins.sql"], root=DATA)
    counts = {
        status: sum(1 for _, s, _ in EXPECTATIONS if s == status)
        for status in ("analysed", "irrelevant", "not_analysed", "error")
    }
    assert analysis.summary() == (
        f"{len(EXPECTATIONS)} statements: {counts['analysed']} analysed, "
        f"{counts['irrelevant']} irrelevant, {counts['not_analysed']} not analysed, "
        f"{counts['error']} parse errors"
    )
    opaque = [n for n in analysis.not_analysed if n.statement.file == "bins.sql"]
    assert len(opaque) >= counts["not_analysed"]
    assert analysis.files == ("bins.sql",)


# ------------------------------------------------------------------------------------------
# the picture
# ------------------------------------------------------------------------------------------


def picture_of(sql: str) -> Picture:
    analysis = analyse_sql(sql, file="p.sql")
    assert analysis.parse_errors == ()
    return analysis.picture


def table(picture: Picture, name: str) -> ScriptTable:
    found = picture.table(name)
    assert found is not None, f"{name} not in picture"
    return found


def test_create_table_columns_types_defaults_and_constraints() -> None:
    picture = picture_of(
        """
        CREATE TABLE time_entries (
            id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            owner_id    INTEGER NOT NULL REFERENCES users_web (id) ON DELETE CASCADE,
            task_id     BIGINT,
            code        VARCHAR(20) UNIQUE,
            start_time  TIMESTAMPTZ NOT NULL DEFAULT now(),
            tags        SMALLINT[],
            kind        entry_kind,
            CONSTRAINT uq_owner_start UNIQUE (owner_id, start_time),
            CONSTRAINT fk_task FOREIGN KEY (task_id) REFERENCES tasks,
            CHECK (start_time > '2000-01-01')
        );
        """
    )
    t = table(picture, "time_entries")
    assert t.created and t.qualified_name == "public.time_entries"
    assert [c.name for c in t.live_columns] == [
        "id",
        "owner_id",
        "task_id",
        "code",
        "start_time",
        "tags",
        "kind",
    ]
    types = {c.name: (c.type.base if c.type else None) for c in t.live_columns}
    assert types == {
        "id": "uuid",
        "owner_id": "integer",
        "task_id": "bigint",
        "code": "character varying",
        "start_time": "timestamp with time zone",
        "tags": "smallint[]",
        "kind": "entry_kind",
    }
    id_col = t.column("id")
    assert id_col is not None and id_col.nullable is False and id_col.default is not None
    assert id_col.line == 3
    owner = t.column("owner_id")
    assert owner is not None and owner.nullable is False and owner.line == 4
    assert t.primary_key is not None
    assert [r.current_name for r in t.primary_key.columns] == ["id"]
    assert sorted([r.current_name for r in k.columns] for k in t.uniques) == [
        ["code"],
        ["owner_id", "start_time"],
    ]
    fks = {fk.columns[0].current_name: fk for fk in t.foreign_keys}
    assert fks["owner_id"].referenced.current_name == "public.users_web"
    assert [r.current_name for r in fks["owner_id"].referenced_columns] == ["id"]
    assert fks["task_id"].name == "fk_task"
    assert fks["task_id"].referenced_columns == []
    assert len(t.checks) == 1
    # tables only referenced are in the picture too, not as created
    assert table(picture, "users_web").created is False
    assert table(picture, "tasks").created is False


def test_alter_table_add_drop_rename_and_retype() -> None:
    picture = picture_of(
        """
        CREATE TABLE entries (id integer PRIMARY KEY, stopped_at timestamptz, legacy text);
        CREATE INDEX ix_active ON entries (id) WHERE stopped_at IS NULL;
        ALTER TABLE entries ADD COLUMN note text, DROP COLUMN legacy;
        ALTER TABLE entries ADD COLUMN IF NOT EXISTS note integer;
        ALTER TABLE entries RENAME COLUMN stopped_at TO end_time;
        ALTER TABLE entries ALTER COLUMN id TYPE bigint;
        ALTER TABLE entries ALTER COLUMN note SET DEFAULT 'n/a';
        ALTER TABLE entries RENAME TO time_entries;
        ALTER TABLE time_entries
            ADD CONSTRAINT fk_owner FOREIGN KEY (owner_id) REFERENCES users (id);
        """
    )
    assert picture.table("entries") is None
    t = table(picture, "time_entries")
    assert [c.name for c in t.live_columns] == ["id", "end_time", "note"]
    id_col, _, note = t.live_columns
    assert id_col.type is not None and id_col.type.base == "bigint"
    assert id_col.type_source.line == 7
    assert note.type is not None and note.type.base == "text"  # IF NOT EXISTS kept the first
    assert note.default is not None
    # the index follows the renames, as it does in PostgreSQL
    (index,) = picture.live_indexes
    assert index.table.current_name == "public.time_entries"
    assert [r.current_name for r in index.predicate_columns] == ["end_time"]
    assert index.predicate == "stopped_at IS NULL"
    # a column the scripts only use (owner_id) is not invented
    (fk,) = t.foreign_keys
    assert fk.columns[0].column is None and fk.columns[0].current_name == "owner_id"
    assert picture.table_mentions["public.time_entries"][0].line == 2


def test_indexes_enums_drops() -> None:
    picture = picture_of(
        """
        CREATE TYPE status AS ENUM ('open', 'done');
        CREATE UNIQUE INDEX IF NOT EXISTS ux_slug ON roles (lower(slug)) INCLUDE (name);
        CREATE INDEX ix_gone ON roles (name);
        DROP INDEX IF EXISTS ix_gone;
        CREATE TABLE scratch (id int);
        DROP TABLE scratch;
        CREATE TYPE old_status AS ENUM ('x');
        DROP TYPE old_status;
        CREATE TEMP TABLE tmp_ids (id int);
        """
    )
    assert [(e.name, e.labels) for e in picture.live_enums] == [("status", ("open", "done"))]
    (index,) = picture.live_indexes
    assert index.name == "ux_slug" and index.unique
    assert index.keys == ("LOWER(slug)",)
    assert [r.current_name for r in index.columns] == ["slug", "name"]
    assert picture.table("scratch") is None
    tmp = table(picture, "tmp_ids")
    assert tmp.temporary


def test_insert_update_delete_record_uses_and_values() -> None:
    picture = picture_of(
        """
        INSERT INTO roles (id, slug) VALUES (gen_random_uuid(), 'admin'), (gen_random_uuid(), 'x')
        ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name;
        UPDATE time_entries AS t SET stopped_at = now()
         WHERE t.stopped_at IS NULL
           AND EXISTS (SELECT 1 FROM time_entries n WHERE n.owner_id = t.owner_id AND ghost = 1);
        UPDATE tasks SET title = p.name FROM projects p WHERE tasks.project_id = p.id AND done;
        DELETE FROM sessions WHERE expires_at < now();
        """
    )
    uses = {(u.ref.current_table, u.ref.current_name, u.context) for u in picture.uses}
    assert uses == {
        ("public.roles", "id", "INSERT"),
        ("public.roles", "slug", "INSERT"),
        ("public.roles", "slug", "INSERT ... ON CONFLICT"),
        ("public.roles", "name", "INSERT ... ON CONFLICT DO UPDATE"),
        ("public.time_entries", "stopped_at", "UPDATE"),
        # only the target's own columns: the subquery's (ghost) are not attributed
        ("public.time_entries", "stopped_at", "UPDATE ... WHERE"),
        ("public.tasks", "title", "UPDATE"),
        # with FROM in scope only qualified names are attributed (done is ambiguous)
        ("public.tasks", "project_id", "UPDATE ... WHERE"),
        ("public.sessions", "expires_at", "DELETE ... WHERE"),
    }
    # only values whose type is evident are recorded ('admin' could be any type)
    writes = [(w.ref.current_name, w.context, w.line, w.what) for w in picture.writes]
    assert writes == [
        ("id", "INSERT", 2, "gen_random_uuid()"),
        ("id", "INSERT", 2, "gen_random_uuid()"),
        ("stopped_at", "UPDATE", 4, "CURRENT_TIMESTAMP"),
    ]


def test_not_analysed_parts_of_analysed_statements_are_listed() -> None:
    analysis = analyse_sql(
        "CREATE TABLE t (LIKE base INCLUDING ALL);\n"
        "ALTER TABLE t ADD CONSTRAINT ex EXCLUDE USING gist (a WITH =);\n"
        "CREATE EXTENSION vector;\n",
        file="n.sql",
    )
    reasons = [(n.statement.line, n.reason) for n in analysis.not_analysed]
    assert [line for line, _ in reasons] == [1, 2, 3]
    assert "LIKE" in reasons[0][1]
    assert "EXCLUDE" in reasons[1][1]
    assert reasons[2][1].startswith("CREATE EXTENSION")


def test_files_are_analysed_in_the_given_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a_second.sql").write_text("ALTER TABLE t ADD COLUMN x int;\n", encoding="utf-8")
    (tmp_path / "b" / "001_first.sql").write_text("CREATE TABLE t (id int);\n", encoding="utf-8")
    paths = expand_globs(["b/*.sql", "*.sql", "b/001_first.sql"], root=tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "b/001_first.sql",
        "a_second.sql",
    ]
    analysis = analyse_files(paths, root=tmp_path)
    assert analysis.files == ("b/001_first.sql", "a_second.sql")
    t = analysis.picture.table("t")
    assert t is not None and t.created
    assert [c.name for c in t.live_columns] == ["id", "x"]


def test_statement_texts_keep_their_file_and_line() -> None:
    analysis = analyse_sql(
        "SELECT 1;\n\nCREATE TABLE t (id int);\nCREATE EXTENSION x;\nSELECT (;", file="db/x.sql"
    )
    assert analysis.counts == {"irrelevant": 1, "analysed": 1, "not_analysed": 1, "error": 1}
    assert analysis.statement_count == 4
    assert [n.location for n in analysis.not_analysed] == ["db/x.sql:4"]
    assert [p.statement.location for p in analysis.parse_errors] == ["db/x.sql:5"]
    t = analysis.picture.table("t")
    assert t is not None and t.source.location == "db/x.sql:3"
    assert split_sql("SELECT 1").statements[0].file == "<string>"


def test_generated_columns_and_partition_keys_are_column_uses() -> None:
    picture = picture_of(
        """
        CREATE TABLE timers (
            id    integer PRIMARY KEY,
            done  boolean GENERATED ALWAYS AS (stopped_at IS NULL) STORED,
            month date GENERATED ALWAYS AS (date_trunc('month', started_at)) STORED
        ) PARTITION BY RANGE (stopped_at);
        ALTER TABLE timers ADD COLUMN late boolean GENERATED ALWAYS AS (due < now()) STORED;
        CREATE TABLE events (id integer, kind text) PARTITION BY LIST (lower(kind));
        """
    )
    uses = [(u.ref.current_table, u.ref.current_name, u.context, u.line) for u in picture.uses]
    assert uses == [
        ("public.timers", "stopped_at", "generated column", 4),
        ("public.timers", "started_at", "generated column", 5),
        ("public.timers", "stopped_at", "PARTITION BY key", 6),
        ("public.timers", "due", "generated column", 7),
        ("public.events", "kind", "PARTITION BY key", 8),
    ]


def test_comment_on_column_and_trigger_columns_are_uses() -> None:
    analysis = analyse_sql(
        "COMMENT ON COLUMN time_entries.stopped_at IS 'when the timer stopped';\n"
        "COMMENT ON COLUMN public.tasks.title IS 'title';\n"
        "COMMENT ON TABLE timers IS 'gone';\n"
        "CREATE TRIGGER trg_touch BEFORE INSERT OR UPDATE OF stopped_at, note ON time_entries\n"
        "    FOR EACH ROW WHEN (NEW.stopped_at IS NOT NULL AND OLD.owner_id = 1)\n"
        "    EXECUTE FUNCTION touch();\n",
        file="c.sql",
    )
    assert analysis.counts == {"analysed": 4}
    uses = [
        (u.ref.current_table, u.ref.current_name, u.context, u.line) for u in analysis.picture.uses
    ]
    assert uses == [
        ("public.time_entries", "stopped_at", "COMMENT ON COLUMN", 1),
        ("public.tasks", "title", "COMMENT ON COLUMN", 2),
        ("public.time_entries", "stopped_at", "trigger UPDATE OF", 4),
        ("public.time_entries", "note", "trigger UPDATE OF", 4),
        ("public.time_entries", "stopped_at", "trigger WHEN", 5),
        ("public.time_entries", "owner_id", "trigger WHEN", 5),
    ]
    # the table a COMMENT ON TABLE names is in the picture (and so compared with the schema)
    assert table(analysis.picture, "timers").created is False
    # the trigger's function is not looked into: said so
    assert [(n.statement.line, n.reason) for n in analysis.not_analysed] == [
        (4, "CREATE TRIGGER: the trigger function touch() is not analysed")
    ]


def test_column_and_table_parts_that_are_not_compared_are_listed() -> None:
    analysis = analyse_sql(
        "CREATE TABLE t (\n"
        '    a text COLLATE "C",\n'
        "    b integer GENERATED BY DEFAULT AS IDENTITY,\n"
        "    c integer NULL\n"
        ") INHERITS (base);\n"
        "CREATE TABLE t_2024 PARTITION OF parent FOR VALUES FROM (1) TO (10);\n",
        file="n.sql",
    )
    reasons = [(n.statement.line, n.reason) for n in analysis.not_analysed]
    assert reasons == [
        (1, 'column t.a: COLLATE "C" is not analysed'),
        (1, "CREATE TABLE ... INHERITS (base): the inherited columns are not known"),
        (6, "CREATE TABLE ... PARTITION OF parent: the columns come from parent and are not known"),
    ]
    t = table(analysis.picture, "t")
    assert t.created is False  # its column list is not complete
    b = t.column("b")
    assert b is not None and b.nullable is False  # identity columns are NOT NULL
    assert table(analysis.picture, "t_2024").created is False
    assert table(analysis.picture, "parent").created is False
