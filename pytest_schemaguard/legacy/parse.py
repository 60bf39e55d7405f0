"""Parse each statement with sqlglot (``read="postgres"``) and sort it into one of four bins.

- ``analysed``: a statement this check understands and applies to the picture of the schema
  the scripts build (CREATE TABLE / INDEX / TYPE ... AS ENUM / TRIGGER, ALTER TABLE, DROP,
  INSERT, UPDATE, DELETE, COMMENT ON TABLE / COLUMN, GRANT / REVOKE on a table);
- ``irrelevant``: understood by the parser but with nothing to check (SET, BEGIN, COMMIT,
  COMMENT ON an index or a type, GRANT on a schema, CREATE SEQUENCE, SELECT...);
- ``not_analysed``: the parser only gives it back as an opaque command (CREATE EXTENSION,
  CREATE POLICY, ALTER TYPE ... ADD VALUE...), or it is a routine body (DO, CREATE FUNCTION,
  CREATE PROCEDURE) or a view body the check does not look into; listed, never dropped;
- ``error``: the statement does not parse (or does not even lex); it is a finding.

A statement nested too deeply for the parser (its recursion runs out) is ``not_analysed``
("not analysed: nested too deeply"), and so is one that the installed sqlglot cannot handle
(a node type or feature it lacks): one statement is set aside, never the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError

from pytest_schemaguard.sqltext import Statement

__all__ = [
    "NESTED_TOO_DEEPLY",
    "POSTGRES",
    "ParsedStatement",
    "StatementStatus",
    "parse_statement",
    "sql_text",
    "unsupported",
]

NESTED_TOO_DEEPLY = "not analysed: nested too deeply"
_SQLGLOT_VERSION = str(getattr(sqlglot, "__version__", "(unknown version)"))
POSTGRES = Dialect.get_or_raise("postgres")


def sql_text(node: exp.Expr) -> str:
    """``node`` as PostgreSQL SQL (without copying it first: the check never changes a tree)."""
    return POSTGRES.generate(node, copy=False)


StatementStatus = Literal["analysed", "irrelevant", "not_analysed", "error"]

_ROUTINE_KINDS = ("function", "procedure")
_IRRELEVANT_CREATE = frozenset({"SEQUENCE", "SCHEMA", "DATABASE", "ROLE"})
# COMMENT ON these names a table or a column the schema must have; other comments are irrelevant
_ANALYSED_COMMENTS = frozenset({"TABLE", "COLUMN"})


@dataclass(frozen=True)
class ParsedStatement:
    """A statement, what sqlglot made of it and which bin it is in."""

    statement: Statement
    status: StatementStatus
    expression: exp.Expr | None = field(default=None, compare=False, repr=False)
    reason: str | None = None
    """Why it is not analysed, or the parse error message."""
    error_line: int | None = None
    """For ``error``: 1-based line in the file where the parser stopped, when known."""
    error_column: int | None = None


class _DropFallbackWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    # sqlglot logs a warning for every statement it turns into an opaque Command; those are
    # reported by this check as "not analysed", so the log line is noise.
    logger = logging.getLogger("sqlglot")
    quiet = _DropFallbackWarnings()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _leading_words(sql: str, count: int) -> list[str]:
    words: list[str] = []
    for raw in sql.split():
        word = raw.split("(", 1)[0].lower()
        words.append(word)
        if len(words) >= count or not word:
            break
    return words


def _routine_kind(sql: str) -> str | None:
    words = _leading_words(sql, 4)
    if not words:
        return None
    if words[0] == "do":
        return "DO block"
    if words[0] != "create":
        return None
    if len(words) >= 2 and words[1] in _ROUTINE_KINDS:
        return f"CREATE {words[1].upper()}"
    if len(words) >= 4 and words[1:3] == ["or", "replace"] and words[3] in _ROUTINE_KINDS:
        return f"CREATE OR REPLACE {words[3].upper()}"
    return None


def _command_head(command: exp.Command) -> str:
    head = str(command.this).upper()
    rest = command.expression
    rest_text = rest.name if isinstance(rest, exp.Expression) else str(rest or "")
    first = rest_text.split(None, 1)[0].upper() if rest_text.split() else ""
    if head in ("CREATE", "ALTER", "DROP") and first in ("OR", "UNIQUE", "TEMP", "TEMPORARY"):
        words = rest_text.split()
        first = " ".join(w.upper() for w in words[:3]) if first == "OR" else first
    return f"{head} {first}".strip()


def _classify(node: exp.Expr) -> tuple[StatementStatus, str | None]:
    if isinstance(node, exp.Command):
        return "not_analysed", f"{_command_head(node)}: the parser gives no structure for it"
    if isinstance(node, exp.Create):
        kind = str(node.args.get("kind") or "").upper()
        if kind in ("TABLE", "INDEX", "TRIGGER"):
            if kind == "TABLE" and node.args.get("expression") is not None:
                return "not_analysed", "CREATE TABLE ... AS: the query is not analysed"
            return "analysed", None
        if kind == "TYPE":
            value = node.args.get("expression")
            if isinstance(value, exp.DataType) and value.is_type(exp.DataType.Type.ENUM):
                return "analysed", None
            return "not_analysed", "CREATE TYPE other than AS ENUM is not analysed"
        if kind in ("VIEW", "MATERIALIZED VIEW") or node.args.get("materialized"):
            return "not_analysed", f"CREATE {kind}: the view's query is not analysed"
        if kind in _IRRELEVANT_CREATE:
            return "irrelevant", None
        return "not_analysed", f"CREATE {kind or 'statement'} is not analysed"
    if isinstance(node, exp.Alter):
        kind = str(node.args.get("kind") or "").upper()
        if kind in ("TABLE", "INDEX"):
            return "analysed", None
        return "irrelevant", None
    if isinstance(node, exp.Drop):
        kind = str(node.args.get("kind") or "").upper()
        if kind in ("TABLE", "INDEX", "TYPE"):
            return "analysed", None
        return "irrelevant", None
    if isinstance(node, exp.Insert | exp.Update | exp.Delete):
        return "analysed", None
    if isinstance(node, exp.Comment):
        kind = str(node.args.get("kind") or "").upper()
        return ("analysed" if kind in _ANALYSED_COMMENTS else "irrelevant"), None
    if isinstance(node, exp.Grant | exp.Revoke):
        # on a table (and its columns); on a schema, sequence, function...: nothing to check
        kind = str(node.args.get("kind") or "TABLE").upper()
        securable = node.args.get("securable")
        if kind == "TABLE" and isinstance(securable, exp.Table):
            return "analysed", None
        return "irrelevant", None
    return "irrelevant", None


def _error_position(statement: Statement, error: ParseError) -> tuple[int | None, int | None]:
    for detail in error.errors:
        line = detail.get("line")
        col = detail.get("col")
        if isinstance(line, int) and isinstance(col, int):
            file_line = statement.line + line - 1
            file_col = col + (statement.column - 1 if line == 1 else 0)
            return file_line, file_col
    return None, None


def _error_message(error: Exception) -> str:
    if isinstance(error, ParseError) and error.errors:
        description = error.errors[0].get("description")
        if description:
            return str(description)
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _parse(statement: Statement) -> list[exp.Expr | None]:
    if statement.tokens is not None:
        # the splitter's tokens of this very text: no second tokenization
        return list(POSTGRES.parser().parse(list(statement.tokens), statement.sql))
    return list(POSTGRES.parse(statement.sql))


def parse_statement(statement: Statement) -> ParsedStatement:
    """Parse one statement and put it in its bin."""
    if statement.problem is not None:
        return ParsedStatement(
            statement, "error", reason=statement.problem, error_line=statement.line
        )
    routine = _routine_kind(statement.sql)
    if routine is not None:
        return ParsedStatement(
            statement, "not_analysed", reason=f"{routine}: the body is not analysed"
        )
    try:
        with _quiet_sqlglot():
            nodes = [n for n in _parse(statement) if n is not None]
    except ParseError as error:
        line, col = _error_position(statement, error)
        return ParsedStatement(
            statement,
            "error",
            reason=_error_message(error),
            error_line=line if line is not None else statement.line,
            error_column=col,
        )
    except TokenError as error:
        return ParsedStatement(
            statement, "error", reason=_error_message(error), error_line=statement.line
        )
    except RecursionError:
        return ParsedStatement(statement, "not_analysed", reason=NESTED_TOO_DEEPLY)
    except Exception as error:  # a sqlglot version that lacks what this statement needs
        return ParsedStatement(statement, "not_analysed", reason=unsupported(error))
    if len(nodes) != 1:
        return ParsedStatement(
            statement,
            "error",
            reason=f"the parser read {len(nodes)} statements here instead of one",
            error_line=statement.line,
        )
    node = nodes[0]
    try:
        status, reason = _classify(node)
    except RecursionError:
        return ParsedStatement(statement, "not_analysed", reason=NESTED_TOO_DEEPLY)
    except Exception as error:
        return ParsedStatement(statement, "not_analysed", reason=unsupported(error))
    return ParsedStatement(statement, status, expression=node, reason=reason)


def unsupported(error: Exception) -> str:
    """The reason for a statement the installed sqlglot could not handle."""
    detail = str(error).splitlines()[0] if str(error) else ""
    shown = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return f"not analysed: sqlglot {_SQLGLOT_VERSION} cannot handle it ({shown[:120]})"
