"""Baseline parity: a committed ``pg_dump --schema-only`` file against the migrated schema.

The baseline is replayed into a scratch database and read back from the catalog, so a dump
written by another pg_dump or PostgreSQL version compares cleanly when the schemas are equal.
Replaying is forgiving about what does not describe the schema: psql meta-commands
(``\\restrict``, ``\\connect``...) are dropped, ``SET`` lines for parameters this server does not
know (``transaction_timeout`` on older servers) are skipped, owners and privileges are not
replayed (the comparison does not look at them, and the roles rarely exist locally), and a
``CREATE SCHEMA`` for a schema that already exists (``public``) is accepted.

Writing a baseline (``--schemaguard-update-baseline``) dumps the migrated schema with the
server's own pg_dump, normalised so that the same schema always gives the same bytes.

This module does not import pytest.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.legacy.split import Statement, one_line, split_sql

__all__ = [
    "RESTRICT_KEY",
    "BaselineError",
    "ReplayProblem",
    "ReplayReport",
    "dump_schema",
    "normalise_dump",
    "replay_baseline",
    "write_atomically",
]

RESTRICT_KEY = "schemaguard"
"""The fixed ``\\restrict`` key written into baselines (pg_dump picks a random one)."""

_WORD = re.compile(r"[A-Za-z_]+")


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

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def _words(sql: str, n: int = 8) -> list[str]:
    return [w.upper() for w in _WORD.findall(sql[:400])[:n]]


def _classify(statement: Statement) -> str | None:
    """Why ``statement`` is not replayed, or None to run it."""
    words = _words(statement.sql)
    if not words:
        return "empty"
    sql = " ".join(statement.sql.split()).upper()
    if words[0] == "ALTER" and " OWNER TO " in f" {sql} ":
        return "owner"
    if words[0] in ("GRANT", "REVOKE"):
        return "privileges"
    if words[:3] == ["ALTER", "DEFAULT", "PRIVILEGES"]:
        return "privileges"
    if words[:3] == ["COMMENT", "ON", "EXTENSION"]:
        # the extension's comment comes from its control file on both sides
        return "extension comment"
    if words[:2] == ["SECURITY", "LABEL"]:
        return "security label"
    if words[0] in ("CREATE", "ALTER") and words[1:2] in (["PUBLICATION"], ["SUBSCRIPTION"]):
        return "replication"
    return None


def _set_parameter(sql: str) -> str | None:
    """The parameter a ``SET x = ...`` / ``SET x TO ...`` statement sets."""
    match = re.match(r"\s*SET\s+(?:SESSION\s+|LOCAL\s+)?([A-Za-z_][A-Za-z0-9_.]*)", sql, re.I)
    return match.group(1).lower() if match else None


def replay_baseline(text: str, dsn: str, *, file: str = "baseline") -> ReplayReport:
    """Run the schema statements of a ``pg_dump --schema-only`` file in the (empty) database
    ``dsn``, one by one, and report what was skipped and what the server rejected."""
    import psycopg
    from psycopg import errors

    split = split_sql(text, file=file)
    report = ReplayReport(meta_commands=len(split.meta_commands))
    with psycopg.connect(dsn, autocommit=True) as conn:
        known = {
            row[0] for row in conn.execute("SELECT name FROM pg_catalog.pg_settings").fetchall()
        }
        for statement in split.statements:
            if statement.problem:
                report.problems.append(
                    ReplayProblem(statement.line, statement.quote, statement.problem)
                )
                continue
            why = _classify(statement)
            if why == "empty":
                continue
            if why is not None:
                report.skip(why)
                continue
            parameter = _set_parameter(statement.sql)
            if parameter is not None and parameter not in known and "." not in parameter:
                report.skip(f"SET {parameter} (unknown to this server)")
                continue
            try:
                conn.execute(statement.sql.encode())
            except psycopg.Error as exc:
                if isinstance(exc, errors.DuplicateSchema) and _words(statement.sql, 2) == [
                    "CREATE",
                    "SCHEMA",
                ]:
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
