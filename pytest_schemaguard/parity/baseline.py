"""Baseline parity: a committed ``pg_dump --schema-only`` file against the migrated schema.

The baseline is replayed into a scratch database and read back from the catalog, so a dump
written by another pg_dump or PostgreSQL version compares cleanly when the schemas are equal.

A baseline arrives in pull requests like code, so it is data to classify before it is SQL to
execute.  :func:`plan_replay` reads the whole file first (statements told apart from sqlglot's
PostgreSQL tokens, never from regular expressions) and sorts every statement into one of:

- **run**: what ``pg_dump --schema-only`` writes for the schema of one database: ``SET`` and
  ``SELECT pg_catalog.set_config(...)`` of session settings, ``CREATE``/``ALTER``/``COMMENT
  ON`` of schema objects (tables, views, materialized views ``WITH NO DATA``, functions in any
  language but C, triggers, extensions, servers, user mappings...), ``SELECT
  pg_catalog.setval(...)`` with literal arguments (``set_config`` and ``setval`` written
  without their schema run as ``pg_catalog``'s: the file could define its own);
- **skipped silently**, because the comparison does not look at them or the roles rarely exist
  here: owners, ``GRANT``/``REVOKE``, security labels, extension comments, publications and
  subscriptions (never run: a subscription connects out), ``SET ROLE``/``SET SESSION
  AUTHORIZATION``, ``SET`` of the timeouts and of ``check_function_bodies`` (the replay keeps
  its own; it never compiles a body) or of a parameter pg_dump does not write
  (``allow_system_table_mods``...), the psql meta-commands
  ``\\restrict``/``\\unrestrict``; and, at run time, ``SET`` of one of those settings this server
  does not know (``default_table_access_method`` before PostgreSQL 12);
- **set aside and named in one note** (:meth:`ReplayReport.note`): what ``--clean`` and
  ``--create`` add around the schema — ``CREATE``/``ALTER``/``COMMENT ON DATABASE``, ``DROP
  DATABASE`` of the database the file creates, ``\\connect``, the ``DROP`` statements of
  ``--clean`` (the scratch database starts empty) — and event triggers, which would run their
  function on every later statement of the replay;
- **refused**: everything else (``COPY``, ``DO``, ``CALL``, DML, ``SELECT`` of any other
  function, ``CREATE TABLE ... AS``, a materialized view with data, an expression PostgreSQL
  evaluates while it runs the statement (a partition bound that is not literals, a column added
  with a default, ``USING``, a constraint validated or a column computed at once with a call
  that no column goes into), roles, tablespaces, ``ALTER
  SYSTEM``, ``LOAD``, C-language functions, ``DROP DATABASE`` of another database, any other
  psql meta-command...).  One refused statement and **nothing** of the file runs
  (:attr:`ReplayReport.refused`).

:func:`run_plan` then runs the plan in the scratch database only (``\\connect`` is never
followed), in one transaction with a savepoint per statement, each statement sent alone through
the extended query protocol, which refuses a second statement hidden in one.  A ``CREATE
SCHEMA`` for a schema that already exists (``public``) is accepted.  A statement that names a
role the server lacks (``CREATE POLICY ... TO r``) runs after ``CREATE ROLE r NOLOGIN`` on a
server schemaguard started, and is not replayed (and reported) on any other.

Writing a baseline (``--schemaguard-update-baseline``) dumps the migrated schema with the
server's own pg_dump, normalised so that the same schema always gives the same bytes.

This module does not import pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import itertools
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.sqltext import MetaCommand, Statement, one_line, split_sql

__all__ = [
    "RESTRICT_KEY",
    "BaselineError",
    "Refusal",
    "ReplayPlan",
    "ReplayProblem",
    "ReplayReport",
    "SetAside",
    "cannot_write",
    "drop_roles",
    "dump_schema",
    "normalise_dump",
    "plan_replay",
    "probe_writable",
    "replay_baseline",
    "run_plan",
    "write_atomically",
]

RESTRICT_KEY = "schemaguard"
"""The fixed ``\\restrict`` key written into baselines (pg_dump picks a random one)."""


class BaselineError(SchemaguardError):
    """The baseline cannot be read, replayed or written."""


@dataclass(frozen=True)
class ReplayProblem:
    """A baseline statement the server rejected."""

    line: int
    statement: str
    error: str

    def render(self) -> str:
        return f"line {self.line}: {self.statement}\n    {self.error}"


@dataclass(frozen=True)
class Refusal:
    """A baseline statement that is not schema DDL: because of it, nothing of the file runs."""

    line: int
    first_line: str
    """The statement's first line, as written (cut to about 100 characters)."""
    why: str

    def render(self, file: str) -> list[str]:
        return [
            f"{file}:{self.line}: {self.first_line}",
            f"    not schema DDL; not executed ({self.why})",
        ]


@dataclass(frozen=True)
class SetAside:
    """A statement ``pg_dump --clean/--create`` writes around the schema (or an event trigger)
    that the replay does not run and names in its note."""

    line: int
    label: str
    """``DROP DATABASE appx``, ``\\connect appx``, ``CREATE EVENT TRIGGER t``; ``DROP`` for
    the drops of ``--clean``."""
    clean: bool = False


@dataclass
class ReplayReport:
    """What replaying a baseline did."""

    executed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Why statements were not replayed → how many (``owner``, ``privileges``...)."""
    problems: list[ReplayProblem] = field(default_factory=list)
    meta_commands: int = 0
    missing_roles: list[ReplayProblem] = field(default_factory=list)
    """Statements not replayed because they name roles the server does not have (when roles
    may not be created)."""
    created_roles: list[str] = field(default_factory=list)
    """Roles created (``NOLOGIN``) so that statements naming them could run."""
    refused: list[Refusal] = field(default_factory=list)
    """Statements that are not schema DDL; when there is one, nothing of the file ran."""
    set_aside: list[SetAside] = field(default_factory=list)
    """Database-level statements, ``--clean`` drops and event triggers, not run."""

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def note(self) -> str | None:
        """One line naming what was set aside (``None`` when nothing was):
        ``not replayed: DROP DATABASE appx (line 22), CREATE DATABASE appx (line 27)...``."""
        if not self.set_aside:
            return None
        parts = [f"{s.label} (line {s.line})" for s in self.set_aside if not s.clean]
        drops = [s.line for s in self.set_aside if s.clean]
        if drops:
            lines = f"line {drops[0]}" if len(drops) == 1 else f"lines {drops[0]}-{drops[-1]}"
            count = f"{len(drops)} DROP statement{'s' if len(drops) > 1 else ''}"
            parts.append(f"{count} of pg_dump --clean ({lines}; the scratch database starts empty)")
        return "not replayed: " + ", ".join(parts)


# --------------------------------------------------------------------------- reading statements

# Roles a statement may name that are not roles in pg_roles.
_ROLE_KEYWORDS = frozenset(
    {"PUBLIC", "CURRENT_USER", "CURRENT_ROLE", "SESSION_USER", "USER", "NONE", "DEFAULT"}
)


@dataclass(frozen=True)
class _Word:
    """One token of a statement: ``word`` is its upper-cased text when it can be a keyword
    (an unquoted word or a symbol), ``None`` for a quoted identifier or any string;
    ``depth`` is the parenthesis depth it is at."""

    word: str | None
    text: str
    quoted: bool
    depth: int
    literal: bool = False
    """A string or a number."""
    start: int = -1
    """Offset of its first character in the statement (-1 when read from a command's text)."""

    @property
    def folded(self) -> str:
        """The token as a name, as PostgreSQL folds it: quoted as written, else lower case."""
        return self.text if self.quoted else self.text.lower()


@functools.cache
def _dialect() -> Any:
    from sqlglot.dialects.postgres import Postgres

    return Postgres()


def _tokens(sql: str) -> list[_Word] | None:
    """The tokens of one statement (sqlglot's PostgreSQL tokenizer), or ``None`` when it
    cannot read them (the server then judges the statement)."""
    from sqlglot.errors import TokenError
    from sqlglot.tokenizer_core import TokenType

    try:
        raw = _dialect().tokenize(sql)
        # sqlglot reads the rest of a statement that starts with a "command" keyword (RESET,
        # DO, CALL...) as one string: read that string as tokens too.
        if len(raw) == 2 and raw[0].token_type == TokenType.COMMAND:
            raw = [raw[0], *_dialect().tokenize(raw[1].text)]
    except TokenError:
        return None
    words: list[_Word] = []
    depth = 0
    command = len(raw) > 1 and raw[0].token_type == TokenType.COMMAND
    for n, token in enumerate(raw):
        if token.token_type == TokenType.R_PAREN:
            depth = max(0, depth - 1)
        quoted = token.token_type == TokenType.IDENTIFIER
        is_string = "STRING" in token.token_type.name
        word = None if quoted or is_string else token.text.upper()
        literal = is_string or token.token_type == TokenType.NUMBER
        start = token.start if n == 0 or not command else -1
        words.append(_Word(word, token.text, quoted, depth, literal, start))
        if token.token_type == TokenType.L_PAREN:
            depth += 1
    return words


def _top(tokens: Sequence[_Word]) -> list[str | None]:
    """The words outside parentheses."""
    return [t.word for t in tokens if t.depth == 0]


def _after_set(words: list[str | None]) -> list[str | None]:
    """The words of a ``SET``/``RESET`` statement after the verb and ``SESSION``/``LOCAL``
    (``SET SESSION AUTHORIZATION`` keeps its ``SESSION``)."""
    rest = words[1:]
    if rest[:1] in (["SESSION"], ["LOCAL"]) and rest[1:2] != ["AUTHORIZATION"]:
        rest = rest[1:]
    return rest


def _classify(tokens: Sequence[_Word] | None) -> str | None:
    """Why a statement is not replayed, or None to run it."""
    if tokens is None:
        return None
    if not tokens:
        return "empty"
    words = _top(tokens)
    head = words[:3]
    if head[0] == "ALTER" and any(a == "OWNER" and b == "TO" for a, b in itertools.pairwise(words)):
        return "owner"
    if head[0] in ("GRANT", "REVOKE"):
        return "privileges"
    if head == ["ALTER", "DEFAULT", "PRIVILEGES"]:
        return "privileges"
    if head == ["COMMENT", "ON", "EXTENSION"]:
        # the extension's comment comes from its control file on both sides
        return "extension comment"
    if head[:2] == ["SECURITY", "LABEL"]:
        return "security label"
    if head[0] in ("CREATE", "ALTER") and head[1:2] in (["PUBLICATION"], ["SUBSCRIPTION"]):
        return "replication"
    if head[0] in ("SET", "RESET"):
        rest = _after_set(words)
        # pg_dump --role / --use-set-session-authorization: the replay keeps the scratch
        # database's owner (a role of the dump's server would not exist, and the comparison
        # does not look at owners)
        if rest[:1] == ["ROLE"]:
            return f"{head[0]} ROLE"
        if rest[:2] == ["SESSION", "AUTHORIZATION"]:
            return f"{head[0]} SESSION AUTHORIZATION"
    return None


def _set_parameter(tokens: Sequence[_Word] | None) -> str | None:
    """The parameter a ``SET x = ...`` / ``SET x TO ...`` statement sets (``a.b`` for a
    custom one)."""
    if not tokens or tokens[0].word != "SET":
        return None
    rest = list(tokens[1:])
    if rest and rest[0].word in ("SESSION", "LOCAL"):
        rest = rest[1:]
    parts: list[str] = []
    for token in rest:
        if token.word == "." and parts:
            parts.append(".")
            continue
        if token.word in ("=", "TO") or (parts and parts[-1] != "."):
            break
        parts.append(token.folded)
    return "".join(parts) or None


def _role_name(token: _Word) -> str | None:
    if token.quoted:
        return token.text
    if token.word is None or token.word in _ROLE_KEYWORDS:
        return None
    return token.text.lower()


def _role_list(tokens: Sequence[_Word], stop: frozenset[str]) -> list[str]:
    """The role names of ``a, "B", PUBLIC`` up to a word in ``stop``."""
    roles: list[str] = []
    for token in tokens:
        if token.depth != 0 or token.word in stop:
            break
        if token.word == ",":
            continue
        name = _role_name(token)
        if name is not None and name not in roles:
            roles.append(name)
    return roles


def _role_references(tokens: Sequence[_Word] | None) -> list[str]:
    """The roles a replayed statement names that must exist for it to run:
    ``CREATE|ALTER POLICY ... TO r, ...``, ``CREATE SCHEMA ... AUTHORIZATION r``,
    ``CREATE|ALTER USER MAPPING FOR r``."""
    if not tokens:
        return []
    head = [t.word for t in tokens[:4]]
    if head[0] in ("CREATE", "ALTER") and head[1] == "POLICY":
        for i, token in enumerate(tokens):
            if token.depth == 0 and token.word == "TO" and tokens[i - 1].word != "RENAME":
                return _role_list(tokens[i + 1 :], frozenset({"USING", "WITH"}))
        return []
    if head[:2] == ["CREATE", "SCHEMA"]:
        for i, token in enumerate(tokens):
            if token.depth == 0 and token.word == "AUTHORIZATION":
                return _role_list(tokens[i + 1 : i + 2], frozenset())
        return []
    if head[0] in ("CREATE", "ALTER") and head[1:3] == ["USER", "MAPPING"]:
        for i, token in enumerate(tokens):
            if token.depth == 0 and token.word == "FOR":
                return _role_list(tokens[i + 1 : i + 2], frozenset())
    return []


# ------------------------------------------------------------------- what a baseline may hold

# The kinds of schema objects a dump creates, alters, comments on or (with --clean) drops.
_SCHEMA_OBJECTS: tuple[tuple[str, ...], ...] = tuple(
    tuple(kind.split())
    for kind in (
        "ACCESS METHOD",
        "AGGREGATE",
        "CAST",
        "COLLATION",
        "COLUMN",
        "CONSTRAINT",
        "CONVERSION",
        "DOMAIN",
        "EXTENSION",
        "FOREIGN DATA WRAPPER",
        "FOREIGN TABLE",
        "FUNCTION",
        "INDEX",
        "LANGUAGE",
        "MATERIALIZED VIEW",
        "OPERATOR",
        "POLICY",
        "PROCEDURE",
        "ROUTINE",
        "RULE",
        "SCHEMA",
        "SEQUENCE",
        "SERVER",
        "STATISTICS",
        "TABLE",
        "TEXT SEARCH",
        "TRANSFORM",
        "TRIGGER",
        "TYPE",
        "USER MAPPING",
        "VIEW",
    )
)
# Not run, and named in the note: they act on a whole database, or (event triggers) would run
# their function on every later statement of the replay.
_SET_ASIDE_OBJECTS = (("DATABASE",), ("EVENT", "TRIGGER"))
# Not run: the comparison does not look at them, and a subscription connects out.
_REPLICATION_OBJECTS = (("PUBLICATION",), ("SUBSCRIPTION",))
_LARGE_OBJECT = ("LARGE", "OBJECT")  # data, not schema: pg_dump --schema-only leaves them out
# Words between CREATE and the kind of object.
_CREATE_MODIFIERS = frozenset(
    {
        "OR",
        "REPLACE",
        "GLOBAL",
        "LOCAL",
        "TEMP",
        "TEMPORARY",
        "UNLOGGED",
        "UNIQUE",
        "TRUSTED",
        "PROCEDURAL",
        "DEFAULT",
        "RECURSIVE",
        "CONSTRAINT",
    }
)
# Session settings the replay does not take from the file (it keeps its own timeouts).
_TIMEOUTS = frozenset(
    {
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "idle_session_timeout",
        "transaction_timeout",
    }
)
# Validators of some languages run code while compiling a body (a Perl BEGIN block): the replay
# keeps function bodies unchecked, as pg_dump's own header asks.
_KEPT_SETTINGS = frozenset({*_TIMEOUTS, "check_function_bodies"})
# The session settings pg_dump writes that shape what the statements create; any other SET is
# skipped (allow_system_table_mods, for one, would let DDL reach the shared catalogs).
_SESSION_SETTINGS = frozenset(
    {
        "client_encoding",
        "standard_conforming_strings",
        "escape_string_warning",
        "search_path",
        "xmloption",
        "client_min_messages",
        "row_security",
        "default_tablespace",
        "default_table_access_method",
        "default_toast_compression",
        "default_with_oids",
    }
)
# Settings that change who the session acts as: SET ROLE is skipped, set_config of these refused.
_ROLE_SETTINGS = frozenset({"role", "session_authorization"})
_ALLOWED_META = frozenset({"restrict", "unrestrict"})
_CONNECT_META = frozenset({"connect", "c"})
# Why a statement that starts with this word is refused (the default names the word).
_REFUSED_VERBS = {
    "COPY": "COPY moves data and can run programs on the database server",
    "DO": "DO runs code",
    "CALL": "CALL runs a procedure",
    "INSERT": "it changes data",
    "UPDATE": "it changes data",
    "DELETE": "it changes data",
    "MERGE": "it changes data",
    "TRUNCATE": "it changes data",
    "LOAD": "LOAD loads a library into the server",
    "REFRESH": "REFRESH runs the materialized view's query",
    "EXPLAIN": "EXPLAIN ANALYZE runs the statement",
    "EXECUTE": "EXECUTE runs a prepared statement",
    "PREPARE": "PREPARE is not schema DDL",
    "WITH": "it runs a query",
    "VALUES": "it runs a query",
    "TABLE": "it runs a query",
    "IMPORT": "IMPORT FOREIGN SCHEMA connects to the foreign server",
    "REASSIGN": "REASSIGN OWNED acts on roles, which belong to the whole server",
    "BEGIN": "the replay runs in one transaction of its own",
    "START": "the replay runs in one transaction of its own",
    "COMMIT": "the replay runs in one transaction of its own",
    "END": "the replay runs in one transaction of its own",
    "ROLLBACK": "the replay runs in one transaction of its own",
    "ABORT": "the replay runs in one transaction of its own",
    "SAVEPOINT": "the replay runs in one transaction of its own",
    "RELEASE": "the replay runs in one transaction of its own",
}


@dataclass(frozen=True)
class _Verdict:
    action: str
    """``run``, ``skip`` (``reason`` counted in :attr:`ReplayReport.skipped`), ``aside``
    (``reason`` is the label in the note), ``clean`` (a ``--clean`` drop) or ``refuse``."""
    reason: str = ""
    call: _Word | None = None
    """For ``run``: a function called without a schema, run as ``pg_catalog.<name>``."""


_RUN = _Verdict("run")


def _kind(words: Sequence[str | None], start: int, *, create: bool = False) -> tuple[str, ...]:
    """The kind of object named from ``words[start]`` on (``("MATERIALIZED", "VIEW")``);
    ``()`` when there is none."""
    i = start
    skip = _CREATE_MODIFIERS if create else frozenset({"PROCEDURAL"})
    while i < len(words) and words[i] in skip:
        i += 1
    rest = tuple(words[i : i + 3])
    # longest first: USER MAPPING is a schema object, USER alone is a role
    for kind in (*_SCHEMA_OBJECTS, *_SET_ASIDE_OBJECTS, *_REPLICATION_OBJECTS, _LARGE_OBJECT):
        if rest[: len(kind)] == kind:
            return kind
    return tuple(w for w in rest[:1] if w is not None)


def _name_after(tokens: Sequence[_Word], kind: tuple[str, ...]) -> str:
    """The (first) name that follows ``kind`` in a statement, as written."""
    words = [t.word for t in tokens]
    for i in range(len(tokens) - len(kind) + 1):
        if tuple(words[i : i + len(kind)]) == kind:
            rest = [t for t in tokens[i + len(kind) :] if t.word not in ("IF", "EXISTS", "NOT")]
            if rest:
                token = rest[0]
                return f'"{token.text}"' if token.quoted else token.text
    return ""


def _identifier(name: str) -> str:
    """A name as PostgreSQL folds it: quoted as written, unquoted in lower case."""
    return name[1:-1] if name.startswith('"') else name.lower()


def _label(tokens: Sequence[_Word], kind: tuple[str, ...]) -> str:
    """``DROP DATABASE appx``: the verb(s), the kind and the name."""
    words = [t.word or "" for t in tokens]
    for i in range(len(words)):
        if tuple(words[i : i + len(kind)]) == kind:
            head = " ".join(w for w in words[:i] if w not in _CREATE_MODIFIERS or w == "ON")
            return f"{head} {' '.join(kind)} {_name_after(tokens, kind)}".strip()
    return " ".join(words[:3])


def _literal_call(tokens: Sequence[_Word]) -> tuple[_Word, list[_Word], bool] | None:
    """``SELECT [pg_catalog.]f(literal, ...)`` with nothing else: ``f``, the arguments and
    whether ``pg_catalog`` was written; ``None`` for any other ``SELECT``."""
    words = [t.word for t in tokens]
    i = 3 if words[1:3] == ["PG_CATALOG", "."] else 1
    if len(tokens) < i + 3 or words[i + 1] != "(" or words[-1] != ")":
        return None
    if tokens[i].word is None or tokens[i].quoted:
        return None
    args: list[_Word] = []
    expect_value = True
    for token in tokens[i + 2 : -1]:
        if token.depth != 1:
            return None
        if expect_value and token.word == "-":
            continue  # a negative number
        if expect_value and (token.literal or token.word in ("TRUE", "FALSE")):
            args.append(token)
            expect_value = False
        elif not expect_value and token.word == ",":
            expect_value = True
        else:
            return None
    if expect_value and args:
        return None
    return tokens[i], args, i == 3


def _judge_select(tokens: Sequence[_Word]) -> _Verdict:
    call = _literal_call(tokens)
    if call is None:
        return _Verdict(
            "refuse", "a query; only set_config and setval with literal arguments may be called"
        )
    name, args, qualified = call
    function = name.text.lower()
    # Written without a schema, the call would find a function of the file's own (public.setval
    # with argument types that match better, or a schema put before pg_catalog in search_path)
    # and run its body: it runs as pg_catalog's.
    run = _RUN if qualified else _Verdict("run", call=name)
    if function == "set_config" and len(args) == 3:
        parameter = args[0].text.lower()
        if parameter in _ROLE_SETTINGS:
            return _Verdict("refuse", f"set_config of {parameter} changes who the replay acts as")
        if parameter in _KEPT_SETTINGS:
            return _Verdict("skip", "a setting the replay keeps")
        if parameter not in _SESSION_SETTINGS:
            return _Verdict("skip", f"SET {parameter} (not a setting pg_dump writes)")
        return run
    if function == "setval" and len(args) in (2, 3):
        return run
    return _Verdict("refuse", f"{function}() would run; only set_config and setval may be called")


def _judge(
    tokens: Sequence[_Word] | None,
    *,
    databases: frozenset[str],
    created: bool,
    domains: frozenset[str] = frozenset(),
) -> _Verdict:
    """What the replay does with one statement.  ``databases``: the databases the file
    creates (``--create``); ``created``: whether a ``CREATE`` statement came before (the drops
    of ``--clean`` all come first); ``domains``: the names of the file's domains that have a
    default (:func:`_defaulted_domains`)."""
    if tokens is None:
        return _Verdict("refuse", "it cannot be read as SQL")
    if not tokens:
        return _Verdict("skip", "empty")
    words = _top(tokens)
    verb = words[0] or ""
    if verb in ("SET", "RESET"):
        why = _classify(tokens)
        if why is not None:
            return _Verdict("skip", why)
        parameter = _set_parameter(tokens)
        if parameter in _KEPT_SETTINGS:
            return _Verdict("skip", "a setting the replay keeps")
        if parameter in _ROLE_SETTINGS:
            return _Verdict("skip", f"SET {parameter}")
        if parameter is not None and parameter not in _SESSION_SETTINGS:
            return _Verdict("skip", f"SET {parameter} (not a setting pg_dump writes)")
        return _RUN
    if verb == "SELECT":
        return _judge_select(tokens)
    if verb in ("GRANT", "REVOKE", "SECURITY"):
        why = _classify(tokens)
        if why is not None:
            return _Verdict("skip", why)
    if verb == "COMMENT" and words[1:2] == ["ON"]:
        return _judge_object(
            tokens, words, 2, databases=databases, created=created, domains=domains
        )
    if verb in ("CREATE", "ALTER", "DROP"):
        return _judge_object(
            tokens, words, 1, databases=databases, created=created, domains=domains
        )
    return _Verdict(
        "refuse",
        _REFUSED_VERBS.get(verb, f"{verb or 'it'} is not what pg_dump --schema-only writes"),
    )


def _judge_object(
    tokens: Sequence[_Word],
    words: list[str | None],
    start: int,
    *,
    databases: frozenset[str],
    created: bool,
    domains: frozenset[str],
) -> _Verdict:
    verb = words[0]
    kind = _kind(words, start, create=verb == "CREATE")
    if kind == ("DATABASE",):
        if verb == "DROP" and _identifier(_name_after(tokens, kind)) not in databases:
            return _Verdict("refuse", "DROP DATABASE of a database this file does not create")
        return _Verdict("aside", _label(tokens, kind))
    if kind == ("EVENT", "TRIGGER"):
        if verb == "DROP":
            return _Verdict("clean")
        return _Verdict("aside", _label(tokens, kind))
    if words[:3] == ["ALTER", "DEFAULT", "PRIVILEGES"]:
        return _Verdict("skip", "privileges")
    if kind in _REPLICATION_OBJECTS:
        return _Verdict("clean") if verb == "DROP" else _Verdict("skip", "replication")
    if kind not in _SCHEMA_OBJECTS:
        shown = " ".join(w for w in words[: start + max(1, len(kind))] if w)
        return _Verdict("refuse", f"{shown} acts outside the schema of one database")
    if verb == "DROP":
        return _Verdict("clean")
    why = _classify(tokens)
    if why is not None:
        return _Verdict("skip", why)
    if verb == "ALTER" and not created and any(w in ("DROP", "DETACH") for w in words):
        # --clean: ALTER TABLE ... DROP CONSTRAINT / ALTER COLUMN ... DROP DEFAULT, before
        # anything is created
        return _Verdict("clean")
    evaluated = _evaluates_an_expression(tokens, words, domains)
    if evaluated is not None:
        return _Verdict("refuse", evaluated)
    if verb != "CREATE":
        return _RUN
    if kind == ("TABLE",) and ("AS" in words or "EXECUTE" in words):
        return _Verdict("refuse", "CREATE TABLE ... AS runs a query")
    if kind == ("MATERIALIZED", "VIEW") and words[-3:] != ["WITH", "NO", "DATA"]:
        return _Verdict(
            "refuse",
            "a materialized view without WITH NO DATA runs its query (pg_dump writes WITH NO DATA)",
        )
    if kind in (("FUNCTION",), ("PROCEDURE",)):
        for i, token in enumerate(tokens[:-1]):
            if token.depth == 0 and token.word == "LANGUAGE" and tokens[i + 1].text.lower() == "c":
                return _Verdict("refuse", "a C-language function loads a library into the server")
    return _RUN


_BOUND_WORDS = frozenset(
    {
        "(",
        ")",
        ",",
        "MINVALUE",
        "MAXVALUE",
        "TRUE",
        "FALSE",
        "NULL",
        "MODULUS",
        "REMAINDER",
    }
)
#: What ``ADD`` in ``ALTER TABLE`` may be followed by that is not a column: a constraint, or
#: ``ALTER COLUMN ... ADD GENERATED {ALWAYS | BY DEFAULT} AS IDENTITY`` (how pg_dump writes an
#: identity column).
_COLUMN_ADDS = frozenset(
    {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE", "GENERATED"}
)


def _evaluates_an_expression(
    tokens: Sequence[_Word], words: list[str | None], domains: frozenset[str] = frozenset()
) -> str | None:
    """Why creating this object would evaluate an expression of the file (and so could call a
    function it defines), or ``None``: a partition bound that is not literals (pg_dump writes
    literals), a column added with a default, its own or that of a domain in ``domains``
    (evaluated once for the table's existing rows; pg_dump writes columns in CREATE TABLE), a
    change of type ``USING`` an expression, and a constraint validated or a column computed at
    once with a part that no column goes into (PostgreSQL folds it into a constant first,
    calling its function, even on an empty table)."""
    for i, token in enumerate(tokens[:-1]):
        if token.depth == 0 and token.word == "FOR" and tokens[i + 1].word == "VALUES":
            bounds = tokens[i + 2 :]
            for j, bound in enumerate(bounds):
                if bound.depth == 0 and bound.word not in ("IN", "FROM", "TO", "WITH", "(", ")"):
                    break
                # a minus sign before a number is part of the constant; any other operator is
                # looked up along search_path, where the file may have put one of its own
                number = j + 1 < len(bounds) and bounds[j + 1].literal and bounds[j + 1].word
                if (
                    bound.depth > 0
                    and not bound.literal
                    and bound.word not in _BOUND_WORDS
                    and not (bound.word == "-" and number)
                ):
                    return "a partition bound that is not literals is evaluated"
    if words[:2] == ["ALTER", "TABLE"]:
        for i, word in enumerate(words[:-1]):
            if word != "ADD" or words[i + 1] in _COLUMN_ADDS:
                continue
            if "DEFAULT" in words:
                return "a column added with a DEFAULT has the default evaluated"
            named = {t.folded for t in tokens}
            if named & domains:
                # its domain's default is evaluated for it, as a DEFAULT of its own would be
                return "a column added with a domain that has a DEFAULT has the default evaluated"
    if words[:2] == ["ALTER", "TABLE"] and _changes_type_using(tokens):
        # pg_dump writes columns in CREATE TABLE, never a change of type
        return "ALTER COLUMN ... TYPE ... USING evaluates its expression"
    if words[:2] in (["ALTER", "TABLE"], ["ALTER", "DOMAIN"]):
        validated = words[-2:] != ["NOT", "VALID"]
        for keyword, expression in _added_expressions(tokens):
            constant = _constant_call(expression) if validated or keyword != "CHECK" else None
            if constant is None:
                continue
            what = (
                "a CHECK constraint added to an existing table or domain is validated"
                if keyword == "CHECK"
                else "a generated column added to an existing table is computed"
            )
            if constant == _UNREADABLE:
                return f"{what} at once, and its expression cannot be read to show what it calls"
            return (
                f"{what} at once, and {constant} (no column in it) is evaluated then: it "
                "could run a function of the file"
            )
    return None


def _defaulted_domains(statements: Sequence[Sequence[_Word]]) -> frozenset[str]:
    """The names (without schema, as PostgreSQL folds them) of the domains a file gives a
    default (``CREATE DOMAIN ... DEFAULT``, ``ALTER DOMAIN ... SET DEFAULT``), and of the
    domains over them, which inherit it."""
    found: set[str] = set()
    bases: dict[str, str] = {}
    for tokens in statements:
        words = [t.word for t in tokens]
        if words[:2] not in (["CREATE", "DOMAIN"], ["ALTER", "DOMAIN"]):
            continue
        name, after = _dotted_name(tokens, 2)
        if "DEFAULT" in _top(tokens) and "DROP" not in _top(tokens):
            found.add(name)
        if words[0] == "CREATE" and after < len(tokens) and words[after] == "AS":
            bases[name] = _dotted_name(tokens, after + 1)[0]
    grew = True
    while grew:
        grew = False
        for name, base in bases.items():
            if base in found and name not in found:
                found.add(name)
                grew = True
    return frozenset(found)


def _dotted_name(tokens: Sequence[_Word], at: int) -> tuple[str, int]:
    """The last part of the name ``a.b.c`` that starts at ``tokens[at]``, as PostgreSQL folds
    it, and the index after the name."""
    last = ""
    while at < len(tokens):
        token = tokens[at]
        last = token.folded
        if at + 1 < len(tokens) and tokens[at + 1].word == ".":
            at += 2
            continue
        return last, at + 1
    return last, at


def _changes_type_using(tokens: Sequence[_Word]) -> bool:
    """Whether an ``ALTER TABLE`` action changes a column's type ``USING`` an expression (not
    ``EXCLUDE USING gist``, ``USING INDEX``: those name a method or an index)."""
    typed = False
    for token in tokens:
        if token.depth != 0:
            continue
        if token.word == ",":
            typed = False
        elif token.word == "TYPE":
            typed = True
        elif token.word == "USING" and typed:
            return True
    return False


def _added_expressions(tokens: Sequence[_Word]) -> list[tuple[str, str]]:
    """Each ``CHECK (...)`` and ``GENERATED ... AS (...)`` expression of a statement, with its
    keyword, written again from its tokens."""
    found = []
    for i, token in enumerate(tokens[:-1]):
        opening = tokens[i + 1]
        generated = token.word == "AS" and "GENERATED" in [
            t.word for t in tokens[max(0, i - 3) : i]
        ]
        if not (token.word == "CHECK" or generated) or opening.word != "(":
            continue
        inner = []
        for inside in tokens[i + 2 :]:
            if inside.word == ")" and inside.depth == opening.depth:
                break
            inner.append(_written(inside))
        found.append(("CHECK" if token.word == "CHECK" else "GENERATED", " ".join(inner)))
    return found


def _written(token: _Word) -> str:
    """A token as SQL: a string or a quoted name quoted again."""
    if token.quoted:
        return '"' + token.text.replace('"', '""') + '"'
    if token.literal and token.word is None:
        return "'" + token.text.replace("'", "''") + "'"
    return token.text


#: What :func:`_constant_call` answers for an expression sqlglot cannot parse.
_UNREADABLE = "\0unreadable"


def _constant_call(expression: str) -> str | None:
    """A function call or operator of ``expression`` that no column goes into (PostgreSQL
    folds it into a constant, calling the function, when it prepares the expression), or
    :data:`_UNREADABLE`.  A literal cast to a type is a constant."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(expression, read="postgres")
    except SqlglotError:
        return _UNREADABLE

    def literal(node: exp.Expression, *, cast: bool = False) -> bool:
        """A literal, in parentheses or not, and with ``cast`` cast once to a type: read by the
        type's input function (``(0)::numeric``). A cast of anything else could call a
        function of a ``CREATE CAST``."""
        while isinstance(node, exp.Paren):
            node = node.this
        if cast and isinstance(node, exp.Cast):
            return literal(node.this)
        return isinstance(node, exp.Literal)

    def built_in_array(cast: exp.Cast) -> bool:
        """An array of literals cast to an array of a built-in type (pg_dump writes
        ``(ARRAY['a'::character varying, ...])::text[]`` for ``IN`` on a varchar column)."""
        inner = cast.this
        while isinstance(inner, exp.Paren):
            inner = inner.this
        return (
            isinstance(inner, exp.Array)
            and all(literal(e, cast=True) for e in inner.expressions)
            and all(t.this != exp.DataType.Type.USERDEFINED for t in cast.to.find_all(exp.DataType))
        )

    for node in tree.walk():
        # no function of the file's runs for these (an array of constants is built as it is;
        # ALL (...) reads as a call)
        if isinstance(node, (exp.And, exp.Or, exp.Not, exp.Paren, exp.Dot, exp.Any, exp.All)):
            continue
        if isinstance(node, exp.Anonymous) and node.name.upper() in ("ANY", "ALL", "SOME"):
            continue
        if isinstance(node, exp.Array) and all(literal(e, cast=True) for e in node.expressions):
            continue
        if isinstance(node, (exp.Cast, exp.Neg)) and literal(node.this):
            continue
        if isinstance(node, exp.Cast) and built_in_array(node):
            continue
        if not isinstance(node, (exp.Func, exp.Binary, exp.Unary, exp.Predicate)):
            continue
        if node.find(exp.Column) is None:
            return node.sql(dialect="postgres", normalize_functions=False)
    return None


def _first_line(text: str, width: int = 100) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


@dataclass
class ReplayPlan:
    """A baseline read and classified, before anything of it runs (:func:`plan_replay`)."""

    file: str
    steps: list[tuple[Statement, list[_Word] | None]]
    """The statements to run, in order, with their tokens."""
    report: ReplayReport

    @property
    def refused(self) -> list[Refusal]:
        return self.report.refused


def plan_replay(text: str, *, file: str = "baseline") -> ReplayPlan:
    """Read and classify the whole baseline: the statements to run, the ones skipped or set
    aside, and the refused ones (:attr:`ReplayReport.refused`; then nothing may run)."""
    split = split_sql(text, file=file)
    report = ReplayReport(meta_commands=len(split.meta_commands))
    tokenized = [(s, None if s.problem else _tokens(s.sql)) for s in split.statements]
    databases = frozenset(
        _identifier(_name_after(tokens, ("DATABASE",)))
        for _s, tokens in tokenized
        if tokens and _top(tokens)[:2] == ["CREATE", "DATABASE"]
    )
    # statements and meta-commands in file order
    entries: list[tuple[int, Statement | MetaCommand]] = [(s.line, s) for s in split.statements]
    entries += [(m.line, m) for m in split.meta_commands]
    entries.sort(key=lambda e: e[0])
    tokens_of = {id(s): tokens for s, tokens in tokenized}
    domains = _defaulted_domains([tokens for _s, tokens in tokenized if tokens])
    steps: list[tuple[Statement, list[_Word] | None]] = []
    created = False
    for _line, entry in entries:
        if isinstance(entry, MetaCommand):
            name = entry.text[1:].split(None, 1)[0] if len(entry.text) > 1 else ""
            if name in _ALLOWED_META:
                continue
            if name in _CONNECT_META:
                report.set_aside.append(SetAside(entry.line, entry.text))
                continue
            report.refused.append(
                Refusal(entry.line, _first_line(entry.text), f"psql meta-command \\{name}")
            )
            continue
        statement = entry
        if statement.problem:
            report.problems.append(
                ReplayProblem(statement.line, statement.quote, statement.problem)
            )
            continue
        tokens = tokens_of[id(statement)]
        verdict = _judge(tokens, databases=databases, created=created, domains=domains)
        if verdict.action == "refuse":
            report.refused.append(
                Refusal(statement.line, _first_line(statement.text), verdict.reason)
            )
        elif verdict.action == "aside":
            report.set_aside.append(SetAside(statement.line, verdict.reason))
        elif verdict.action == "clean":
            report.set_aside.append(SetAside(statement.line, "DROP", clean=True))
        elif verdict.action == "skip":
            if verdict.reason != "empty":
                report.skip(verdict.reason)
        else:
            created = created or (tokens is not None and tokens[0].word == "CREATE")
            if verdict.call is not None:
                at = verdict.call.start
                statement = dataclasses.replace(
                    statement, sql=f"{statement.sql[:at]}pg_catalog.{statement.sql[at:]}"
                )
            steps.append((statement, tokens))
    return ReplayPlan(file, steps, report)


def replay_baseline(
    text: str, dsn: str, *, file: str = "baseline", create_roles: bool = False
) -> ReplayReport:
    """Classify a ``pg_dump --schema-only`` file and, unless a statement is refused, run it in
    the (empty) database ``dsn`` (:func:`plan_replay`, then :func:`run_plan`)."""
    plan = plan_replay(text, file=file)
    if plan.refused:
        return plan.report
    return run_plan(plan, dsn, create_roles=create_roles)


def run_plan(plan: ReplayPlan, dsn: str, *, create_roles: bool = False) -> ReplayReport:
    """Run the statements of a plan without refusals in the (empty) database ``dsn``, in one
    transaction, each in a savepoint so that every rejected statement is reported.

    A statement that names a role the server does not have (``CREATE POLICY ... TO r``) runs
    after ``CREATE ROLE r NOLOGIN`` when ``create_roles`` is true (only on a server schemaguard
    started: roles belong to the whole cluster; the caller drops them with :func:`drop_roles`
    once the database is gone); otherwise it is not replayed and is listed in
    :attr:`ReplayReport.missing_roles`.
    """
    import psycopg
    from psycopg import errors, sql

    if plan.refused:
        raise BaselineError(f"{plan.file} holds statements that are not schema DDL; not run")
    report = plan.report
    with psycopg.connect(dsn, autocommit=True) as conn:
        known = {
            row[0] for row in conn.execute("SELECT name FROM pg_catalog.pg_settings").fetchall()
        }
        roles = {
            row[0] for row in conn.execute("SELECT rolname FROM pg_catalog.pg_roles").fetchall()
        }
        # binary=True: the extended query protocol, which runs exactly one statement
        cursor = conn.cursor(binary=True)
        with conn.transaction():
            cursor.execute(b"SET LOCAL check_function_bodies = off")
            for statement, tokens in plan.steps:
                parameter = _set_parameter(tokens)
                if parameter is not None and parameter not in known and "." not in parameter:
                    report.skip(f"SET {parameter} (unknown to this server)")
                    continue
                missing = [r for r in _role_references(tokens) if r not in roles]
                if missing and not create_roles:
                    report.skip("names a role this server does not have")
                    names = ", ".join(missing)
                    report.missing_roles.append(
                        ReplayProblem(
                            statement.line,
                            statement.quote,
                            f"role{'s' if len(missing) > 1 else ''} {names} "
                            "not on this server: not replayed",
                        )
                    )
                    continue
                for role in missing:
                    try:
                        with conn.transaction():
                            cursor.execute(
                                sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role))
                            )
                    except errors.DuplicateObject:
                        pass  # made meanwhile by someone else: not ours to drop
                    else:
                        report.created_roles.append(role)
                    roles.add(role)
                try:
                    with conn.transaction():
                        cursor.execute(statement.sql.encode())
                except psycopg.Error as exc:
                    if isinstance(exc, errors.DuplicateSchema) and [
                        t.word for t in (tokens or [])[:2]
                    ] == ["CREATE", "SCHEMA"]:
                        report.skip("CREATE SCHEMA of an existing schema")
                        continue
                    message = (exc.diag.message_primary or str(exc)).strip()
                    hint = f" (hint: {exc.diag.message_hint})" if exc.diag.message_hint else ""
                    report.problems.append(
                        ReplayProblem(
                            statement.line,
                            statement.quote,
                            f"{type(exc).__name__}: {message}{hint}",
                        )
                    )
                    continue
                report.executed += 1
    return report


def drop_roles(conn: Any, roles: Sequence[str]) -> list[str]:
    """Drop the roles :func:`replay_baseline` created (``conn``: a psycopg connection in
    autocommit mode); the ones that could not be dropped are returned."""
    import psycopg
    from psycopg import sql

    kept: list[str] = []
    for role in roles:
        try:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        except psycopg.Error:
            kept.append(role)
    return kept


# --------------------------------------------------------------------------- writing


@functools.cache
def _supports_restrict_key(pg_dump: str) -> bool:
    try:
        out = subprocess.run(
            [pg_dump, "--help"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "--restrict-key" in out


_VERSION_COMMENT = re.compile(r"^-- Dumped (?:from database|by pg_dump) version .*\n", re.M)
_RESTRICT = re.compile(r"^\\(restrict|unrestrict) \S+$", re.M)


def normalise_dump(text: str, *, header: Sequence[str] = ()) -> str:
    """A pg_dump output made byte-stable: no version comment lines, a fixed ``\\restrict``
    key, ``\\n`` line ends, one trailing newline, and ``header`` comment lines first."""
    text = text.replace("\r\n", "\n")
    text = _VERSION_COMMENT.sub("", text)
    text = _RESTRICT.sub(lambda m: f"\\{m.group(1)} {RESTRICT_KEY}", text)
    text = re.sub(r"\n{3,}", "\n\n\n", text).strip("\n") + "\n"
    if header:
        text = "".join(f"-- {line}".rstrip() + "\n" for line in header) + "\n" + text
    return text


def dump_schema(
    pg_dump: Path,
    dsn_parts: dict[str, Any],
    *,
    exclude_tables: Sequence[str] = (),
    header: Sequence[str] = (),
) -> str:
    """The normalised ``pg_dump --schema-only`` of a database.

    ``dsn_parts`` holds ``host``, ``port``, ``user``, ``dbname`` and optionally ``password``.
    Owners, privileges and tablespaces are left out: they describe the server the dump was
    taken on, not the schema.
    """
    args = [
        str(pg_dump),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-tablespaces",
        "--host",
        str(dsn_parts["host"]),
        "--port",
        str(dsn_parts["port"]),
        "--username",
        str(dsn_parts["user"]),
        "--dbname",
        str(dsn_parts["dbname"]),
    ]
    if _supports_restrict_key(str(pg_dump)):
        args.append(f"--restrict-key={RESTRICT_KEY}")
    for table in exclude_tables:
        args.append(f"--exclude-table={table}")
    env = dict(os.environ)
    if dsn_parts.get("password"):
        env["PGPASSWORD"] = str(dsn_parts["password"])
    env.pop("PGOPTIONS", None)
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=600, check=False, env=env
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BaselineError(f"could not run {pg_dump}: {exc}") from None
    if proc.returncode != 0:
        raise BaselineError(
            f"{pg_dump} --schema-only failed (exit {proc.returncode}): "
            + one_line(proc.stderr, 400)
        )
    return normalise_dump(proc.stdout, header=header)


def write_atomically(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same directory and a
    rename, so that the file is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def probe_writable(path: Path) -> None:
    """Raise the :class:`OSError` that writing ``path`` with :func:`write_atomically` would
    meet (a read-only file system, a directory the user may not write, a parent that is a
    file), without creating the file or its missing parent directories."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(parent))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    os.close(fd)
    os.unlink(tmp)


def cannot_write(shown: str, exc: OSError) -> str:
    """``cannot write baseline reports/schema.sql: read-only file system``."""
    reason = exc.strerror or str(exc)
    return f"cannot write baseline {shown}: {reason[:1].lower()}{reason[1:]}"
