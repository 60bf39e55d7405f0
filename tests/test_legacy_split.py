"""Statement splitting of legacy SQL files: psql's rules, positions, meta-commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_schemaguard.sqltext import (
    MetaCommand,
    Splitter,
    Statement,
    one_line,
    split_file,
    split_sql,
)


def texts(sql: str) -> list[str]:
    return [s.text for s in split_sql(sql).statements]


def test_plain_statements_and_positions() -> None:
    result = split_sql("SELECT 1;\n\n  CREATE TABLE t (\n    id int\n);\nSELECT 2", file="a.sql")
    assert [s.text for s in result.statements] == [
        "SELECT 1",
        "CREATE TABLE t (\n    id int\n)",
        "SELECT 2",
    ]
    first, second, third = result.statements
    assert (first.file, first.line, first.column, first.end_line) == ("a.sql", 1, 1, 1)
    assert (second.line, second.column, second.end_line) == (3, 3, 5)
    assert (third.line, third.column) == (6, 1)
    assert [s.index for s in result.statements] == [0, 1, 2]
    assert second.location == "a.sql:3"


def test_line_comments_do_not_start_or_end_statements() -> None:
    sql = "-- header; not a statement\nSELECT 1 -- trailing; comment\n, 2;\n-- only a comment\n"
    (stmt,) = split_sql(sql).statements
    assert stmt.line == 2
    assert stmt.text == "SELECT 1 -- trailing; comment\n, 2"
    # comments are blanked out of the SQL handed to the parser, positions kept
    assert stmt.sql.splitlines()[0].rstrip() == "SELECT 1"
    assert stmt.quote == "SELECT 1 , 2"


def test_nested_block_comments() -> None:
    sql = "/* outer ; /* inner ; */ still outer ; */ SELECT 1; SELECT /* x; */ 2;"
    result = split_sql(sql)
    assert [s.quote for s in result.statements] == ["SELECT 1", "SELECT 2"]
    assert result.statements[0].column == 43


def test_string_literals_with_doubled_quotes_and_escapes() -> None:
    sql = (
        "INSERT INTO t VALUES ('a;''b');\n"
        "INSERT INTO t VALUES (E'it\\'s; fine', e'back\\\\');\n"
        "INSERT INTO t VALUES ('C:\\'); SELECT 2;\n"
        "SELECT U&'d\\0061t;', B'0101', X'1F', N'n;';\n"
        'SELECT "semi;colon""quote" FROM t;'
    )
    assert texts(sql) == [
        "INSERT INTO t VALUES ('a;''b')",
        "INSERT INTO t VALUES (E'it\\'s; fine', e'back\\\\')",
        # standard-conforming string: the backslash does not escape the quote
        "INSERT INTO t VALUES ('C:\\')",
        "SELECT 2",
        "SELECT U&'d\\0061t;', B'0101', X'1F', N'n;'",
        'SELECT "semi;colon""quote" FROM t',
    ]


def test_dollar_quoted_bodies() -> None:
    sql = (
        "DO $$ BEGIN RAISE NOTICE 'x;$y'; END $$;\n"
        "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT $$;$$; SELECT 1; $fn$ LANGUAGE sql;\n"
        "DO LANGUAGE plpgsql $b$ BEGIN PERFORM 1; END $b$;\n"
        "SELECT $1, a$b, $2::int;"
    )
    assert texts(sql) == [
        "DO $$ BEGIN RAISE NOTICE 'x;$y'; END $$",
        "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT $$;$$; SELECT 1; $fn$ LANGUAGE sql",
        "DO LANGUAGE plpgsql $b$ BEGIN PERFORM 1; END $b$",
        "SELECT $1, a$b, $2::int",
    ]


def test_begin_atomic_bodies_and_transactions() -> None:
    sql = (
        "BEGIN;\n"
        "CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql\n"
        "BEGIN ATOMIC\n"
        "  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n"
        "  SELECT 2;\n"
        "END;\n"
        "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;\n"
        "COMMIT;\n"
        "SELECT CASE WHEN true THEN 1 END; END;"
    )
    result = split_sql(sql)
    assert [s.quote.split()[0] for s in result.statements] == [
        "BEGIN",
        "CREATE",
        "CREATE",
        "COMMIT",
        "SELECT",
        "END",
    ]
    assert result.statements[1].line == 2
    assert result.statements[1].end_line == 6


def test_semicolon_inside_parentheses_does_not_end_a_statement() -> None:
    sql = (
        "CREATE RULE r AS ON INSERT TO t DO INSTEAD (INSERT INTO u VALUES (1); SELECT 2); SELECT 3;"
    )
    assert len(texts(sql)) == 2


def test_psql_meta_commands_are_dropped_and_listed() -> None:
    sql = (
        "\\restrict AbC'unbalanced\n"
        "SET search_path = public;\n"
        "\\connect other\n"
        "  \\set ON_ERROR_STOP on\n"
        "SELECT 1\n"
        "\\g\n"
        "SELECT 2;\n"
        "\\unrestrict AbC\n"
    )
    result = split_sql(sql, file="dump.sql")
    assert [s.text for s in result.statements] == [
        "SET search_path = public",
        "SELECT 1",
        "SELECT 2",
    ]
    assert [(m.line, m.text) for m in result.meta_commands] == [
        (1, "\\restrict AbC'unbalanced"),
        (3, "\\connect other"),
        (4, "\\set ON_ERROR_STOP on"),
        (6, "\\g"),
        (8, "\\unrestrict AbC"),
    ]
    assert result.meta_commands[1].location == "dump.sql:3"


def test_backslash_inside_literals_is_not_a_meta_command() -> None:
    sql = "SELECT '\n\\connect x\n';\nDO $$\n\\not_meta\n$$;"
    result = split_sql(sql)
    assert len(result.statements) == 2
    assert result.meta_commands == ()


def test_copy_from_stdin_data_is_skipped() -> None:
    sql = "COPY t (a, b) FROM stdin;\n1\t'x;\n2\t$$\n\\.\nSELECT 1;"
    result = split_sql(sql)
    assert [s.text for s in result.statements] == ["COPY t (a, b) FROM stdin", "SELECT 1"]
    assert result.statements[1].line == 5


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("SELECT 1;\nSELECT 'open;\nSELECT 2;", "unterminated string starting at line 2, column 8"),
        ("SELECT 1;\nDO $body$ BEGIN END $$;", "unterminated dollar-quoted string $body$"),
        ("SELECT 1;\n/* open /* nested */ SELECT 2;", "unterminated /* comment starting at line 2"),
        ('SELECT "open;', "unterminated quoted identifier"),
    ],
)
def test_unterminated_literal_runs_to_end_of_file(sql: str, problem: str) -> None:
    result = split_sql(sql)
    last = result.statements[-1]
    assert last.problem is not None
    assert last.problem.startswith(problem)
    assert all(s.problem is None for s in result.statements[:-1])


def test_empty_statements_and_blank_files() -> None:
    assert split_sql("").statements == ()
    assert split_sql(";;\n  ;\n-- just a comment\n/* and a block */").statements == ()
    assert texts("\ufeffSELECT 1;") == ["SELECT 1"]


def test_statement_position_of_an_offset() -> None:
    (stmt,) = split_sql("\n  CREATE TABLE t (\n    id uuid\n  )").statements
    assert stmt.position(0) == (2, 3)
    offset = stmt.sql.index("id uuid")
    assert stmt.position(offset) == (3, 5)


def test_quote_is_one_line_and_cut() -> None:
    long = "CREATE TABLE t (" + ", ".join(f"c{i} int" for i in range(40)) + ")"
    (stmt,) = split_sql(long).statements
    assert len(stmt.quote) == 80
    assert stmt.quote.endswith("…")
    assert one_line("a\n   b\tc") == "a b c"


def test_split_file_names_the_file_relative_to_the_root(tmp_path: Path) -> None:
    script = tmp_path / "db" / "ddl" / "001.sql"
    script.parent.mkdir(parents=True)
    script.write_text("SELECT 1;\nSELECT 2;\n", encoding="utf-8")
    result = split_file(script, root=tmp_path)
    assert result.file == "db/ddl/001.sql"
    assert [s.location for s in result.statements] == ["db/ddl/001.sql:1", "db/ddl/001.sql:2"]
    assert isinstance(result.statements[0], Statement)


# -- the streaming splitter on sqlglot's tokenizer ----------------------------------------------


def test_a_meta_command_ending_a_line_ends_the_statement() -> None:
    result = split_sql("SELECT 1 AS a \\gset\nSELECT 2;\n")
    assert [s.text for s in result.statements] == ["SELECT 1 AS a", "SELECT 2"]
    assert [(m.line, m.text) for m in result.meta_commands] == [(1, "\\gset")]


def test_a_meta_command_inside_a_statement_is_dropped_and_lines_are_kept() -> None:
    result = split_sql("CREATE TABLE t (\n  a int,\n\\echo half way\n  b int\n);\nSELECT 1;")
    first, second = result.statements
    assert (first.line, first.end_line) == (1, 5)
    assert "echo" not in first.sql
    assert first.sql.splitlines()[3] == "  b int"
    assert (second.line, second.column) == (6, 1)
    assert [(m.line, m.text) for m in result.meta_commands] == [(3, "\\echo half way")]


def test_a_long_body_with_many_semicolons_is_one_statement() -> None:
    body = "".join(f"    PERFORM {i}; -- step {i}\n" for i in range(2000))
    sql = (
        "SELECT 0;\n"
        f"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $fn$\nBEGIN\n{body}END;\n$fn$;\n"
        "SELECT 1;\n"
    )
    result = split_sql(sql)
    assert [s.line for s in result.statements] == [1, 2, 2006]
    function = result.statements[1]
    assert function.end_line == 2005
    assert function.text.endswith("END;\n$fn$")


def test_copy_data_after_other_statements_in_one_chunk() -> None:
    sql = (
        "CREATE TABLE t (a int, b text);\n"
        "COPY t (a, b) FROM stdin;\n"
        "1\tit's; not SQL\n"
        "\\.\n"
        "SELECT 'after';\n"
    )
    result = split_sql(sql)
    assert [(s.line, s.text) for s in result.statements] == [
        (1, "CREATE TABLE t (a int, b text)"),
        (2, "COPY t (a, b) FROM stdin"),
        (5, "SELECT 'after'"),
    ]
    assert result.meta_commands == ()


def test_streaming_gives_what_the_whole_text_gives() -> None:
    sql = (
        "/* head */ SET x = 1; SELECT 'a;b'\n"
        ", $$;$$;\n"
        "\\connect db\n"
        "DO $b$ BEGIN\n  PERFORM 1;\nEND $b$;\n"
        "SELECT E'\\';'\n;"
    )
    whole = split_sql(sql)
    splitter = Splitter("s.sql")
    items = []
    for line in sql.splitlines(keepends=True):
        items.extend(splitter.feed(line))
    items.extend(splitter.finish())
    statements = [i for i in items if isinstance(i, Statement)]
    assert [(s.line, s.column, s.text) for s in statements] == [
        (s.line, s.column, s.text) for s in whole.statements
    ]
    assert [(s.line, s.column) for s in statements] == [(1, 12), (1, 23), (4, 1), (7, 1)]
    assert [m.text for m in items if isinstance(m, MetaCommand)] == ["\\connect db"]


def test_statements_carry_their_tokens_for_the_parser() -> None:
    (_, stmt) = split_sql(
        "SELECT 1;\n  -- c\n  UPDATE t\n     SET a = 'x' /* y */ WHERE b;"
    ).statements
    assert stmt.tokens is not None
    first, last = stmt.tokens[0], stmt.tokens[-1]
    assert (first.start, first.line) == (0, 1)
    assert stmt.sql[first.start : first.end + 1] == "UPDATE"
    assert stmt.sql[last.start : last.end + 1] == "b"
    assert last.line == 2
    assert all(not token.comments for token in stmt.tokens)


def test_bytes_that_are_not_utf8_are_named_and_replaced(tmp_path: Path) -> None:
    script = tmp_path / "bad.sql"
    script.write_bytes(b"SELECT 1;\nCREATE TABLE bad_\xff (id int);\nSELECT '\xe9';\n")
    result = split_file(script, root=tmp_path)
    assert [(p.location, p.column, p.detail) for p in result.decode_problems] == [
        ("bad.sql:2", 18, "byte 0xff is not UTF-8")
    ]
    assert [s.text for s in result.statements] == [
        "SELECT 1",
        "CREATE TABLE bad_\ufffd (id int)",
        "SELECT '\ufffd'",
    ]
