"""Baseline parity: a committed ``pg_dump --schema-only`` file against the migrated schema.

The baseline is replayed into a scratch database and read back from the catalog, so a dump
written by another pg_dump or PostgreSQL version compares cleanly when the schemas are equal.
Replaying is forgiving about what does not describe the schema: psql meta-commands
(``\\restrict``, ``\\connect``...) are dropped, ``SET`` lines for parameters this server does not
know (``transaction_timeout`` on older servers) are skipped, as are ``SET ROLE`` and ``SET
SESSION AUTHORIZATION``; owners and privileges are not replayed (the comparison does not look
at them, and the roles rarely exist locally), and a ``CREATE SCHEMA`` for a schema that already
exists (``public``) is accepted.  Statements are told apart from sqlglot's PostgreSQL tokens,
not from regular expressions.  A statement that names a role the server lacks (``CREATE POLICY
... TO r``) runs after ``CREATE ROLE r NOLOGIN`` on a server schemaguard started, and is not
replayed (and reported) on any other.

Writing a baseline (``--schemaguard-update-baseline``) dumps the migrated schema with the
server's own pg_dump, normalised so that the same schema always gives the same bytes.

This module does not import pytest.
"""

from __future__ import annotations

import contextlib
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
from pytest_schemaguard.legacy.split import one_line, split_sql

__all__ = [
    "RESTRICT_KEY",
    "BaselineError",
    "ReplayProblem",
    "ReplayReport",
    "drop_roles",
    "dump_schema",
    "normalise_dump",
    "replay_baseline",
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

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


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
    for token in raw:
        if token.token_type == TokenType.R_PAREN:
            depth = max(0, depth - 1)
        quoted = token.token_type == TokenType.IDENTIFIER
        is_string = "STRING" in token.token_type.name
        word = None if quoted or is_string else token.text.upper()
        words.append(_Word(word, token.text, quoted, depth))
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
        parts.append(token.text if token.quoted else token.text.lower())
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


def replay_baseline(
    text: str, dsn: str, *, file: str = "baseline", create_roles: bool = False
) -> ReplayReport:
    """Run the schema statements of a ``pg_dump --schema-only`` file in the (empty) database
    ``dsn``, one by one, and report what was skipped and what the server rejected.

    A statement that names a role the server does not have (``CREATE POLICY ... TO r``) runs
    after ``CREATE ROLE r NOLOGIN`` when ``create_roles`` is true (only on a server schemaguard
    started: roles belong to the whole cluster; the caller drops them with :func:`drop_roles`
    once the database is gone); otherwise it is not replayed and is listed in
    :attr:`ReplayReport.missing_roles`.
    """
    import psycopg
    from psycopg import errors, sql

    split = split_sql(text, file=file)
    report = ReplayReport(meta_commands=len(split.meta_commands))
    with psycopg.connect(dsn, autocommit=True) as conn:
        known = {
            row[0] for row in conn.execute("SELECT name FROM pg_catalog.pg_settings").fetchall()
        }
        roles = {
            row[0] for row in conn.execute("SELECT rolname FROM pg_catalog.pg_roles").fetchall()
        }
        for statement in split.statements:
            if statement.problem:
                report.problems.append(
                    ReplayProblem(statement.line, statement.quote, statement.problem)
                )
                continue
            tokens = _tokens(statement.sql)
            why = _classify(tokens)
            if why == "empty":
                continue
            if why is not None:
                report.skip(why)
                continue
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
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                except errors.DuplicateObject:
                    pass  # made meanwhile by someone else: not ours to drop
                else:
                    report.created_roles.append(role)
                roles.add(role)
            try:
                conn.execute(statement.sql.encode())
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
