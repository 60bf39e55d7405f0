"""Measuring what a revision's upgrade does to the tables that existed before it.

:class:`SafetyObserver` is a step observer of the migration runner
(:meth:`~pytest_schemaguard.migrations.runner.MigrationRunner.observe`).  Around each revision's
first upgrade (on its parent's schema) it

* reads the relations that exist before the upgrade (their relfilenodes, columns, constraints
  and indexes) and, when the transaction already holds locks from the revisions before it,
  commits that work first (Alembic's own ``autocommit_block``), so the locks this revision takes
  are its own, as on a database where its parent is deployed;
* listens to every statement the migration connection sends (SQLAlchemy cursor events on that
  connection) and, after each statement that is not plain data access, reads on the same
  connection and inside the same transaction: the relation locks our backend holds
  (``pg_locks``), ``lock_timeout``, the sequential and index scans this transaction made of each
  table (``pg_stat_xact_user_tables``), and the catalog rows of the relations it locked;
* compares those with what it read before, relation by relation.  Objects the revision created
  itself are exempt: only relations that existed before it count.

The queries run on the project's DBAPI connection (psycopg, psycopg2, asyncpg through
SQLAlchemy's adapter, pg8000) without parameters, each returning one text value (JSON).

This module does not import pytest.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_schemaguard import dbapi
from pytest_schemaguard.safety.rules import Finding
from pytest_schemaguard.snapshot.introspect.reading import in_autocommit

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from pytest_schemaguard.migrations.alembic_driver import StepError

__all__ = [
    "MODE_NAMES",
    "Measured",
    "Observation",
    "SafetyObserver",
    "StatementWatch",
]

MODE_NAMES = {
    "AccessShareLock": "ACCESS SHARE",
    "RowShareLock": "ROW SHARE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}
_STRENGTH = {name: i for i, name in enumerate(MODE_NAMES)}
_BLOCKS_WRITES = frozenset(
    {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
)
_MASKING = frozenset({"ShareUpdateExclusiveLock", *_BLOCKS_WRITES})
"""Lock modes that, already held when a revision starts, would hide the same lock taken by
the revision (a lock held twice shows once in pg_locks)."""

_TABLES = ("r", "p", "m", "f")
_RELKINDS = "('r','p','i','I','m','v','f')"
_USER = (
    "c.oid >= 16384 AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
    f"AND c.relkind IN {_RELKINDS}"
)
_READ = """
WITH lk AS (
  SELECT l.relation, l.mode FROM pg_catalog.pg_locks l
  WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation' AND l.granted
    AND l.relation >= 16384
), rel AS (
  SELECT c.oid, c.relkind, n.nspname, c.relname, c.relfilenode
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE {user} {only}
)
SELECT pg_catalog.json_build_array(
  (SELECT coalesce(json_agg(json_build_array(oid::int8, relkind, nspname, relname,
     relfilenode::int8)),
     '[]') FROM rel),
  (SELECT coalesce(json_agg(json_build_array(a.attrelid::int8, a.attnum, a.attname, a.attnotnull,
     a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '')), '[]')
   FROM pg_catalog.pg_attribute a JOIN rel ON rel.oid = a.attrelid
   WHERE a.attnum > 0 AND NOT a.attisdropped AND rel.relkind IN ('r','p','m','f')),
  (SELECT coalesce(json_agg(json_build_array(co.oid::int8, co.conrelid::int8, co.conname,
     co.contype, co.convalidated, co.conindid::int8)), '[]')
   FROM pg_catalog.pg_constraint co JOIN rel ON rel.oid = co.conrelid),
  (SELECT coalesce(json_agg(json_build_array(i.indexrelid::int8, i.indrelid::int8)), '[]')
   FROM pg_catalog.pg_index i JOIN rel ON rel.oid = i.indrelid),
  (SELECT coalesce(json_agg(json_build_array(s.relid::int8,
     coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0))), '[]')
   FROM pg_catalog.pg_stat_xact_user_tables s JOIN rel ON rel.oid = s.relid),
  (SELECT coalesce(json_agg(json_build_array(relation::int8, mode)), '[]') FROM lk),
  pg_catalog.current_setting('lock_timeout'),
  pg_catalog.txid_current_if_assigned() IS NOT NULL
)::text
"""
READ_ALL = _READ.format(user=_USER, only="")
"""Every user relation (before a revision, and after a statement outside a transaction)."""
READ_START = f"""
SELECT pg_catalog.json_build_array(
  (SELECT coalesce(json_agg(c.oid::int8), '[]')
   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE {_USER}),
  (SELECT coalesce(json_agg(json_build_array(l.relation::int8, l.mode)), '[]')
   FROM pg_catalog.pg_locks l
   WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation' AND l.granted
     AND l.relation >= 16384)
)::text
"""
"""Before a revision: which relations exist, and the locks the transaction already holds."""
READ_LOCKED = _READ.format(user=_USER, only="AND c.oid IN (SELECT relation FROM lk)")
"""The relations this transaction holds locks on (after a statement)."""

_NEW_OBJECTS = frozenset(
    {"TABLE", "TEMP", "TEMPORARY", "UNLOGGED", "TYPE", "SEQUENCE", "FUNCTION", "SCHEMA", "DOMAIN"}
)
"""What ``CREATE`` makes without touching existing relations (a foreign key of a new table takes
SHARE ROW EXCLUSIVE on the table it references, and nothing about it is reported)."""

_DATA_WORDS = frozenset(
    {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "VALUES",
        "SHOW",
        "SET",
        "RESET",
        "BEGIN",
        "START",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "EXPLAIN",
        "FETCH",
        "DECLARE",
        "CLOSE",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
        "LISTEN",
        "NOTIFY",
    }
)


def leading_words(statement: str, count: int = 2) -> tuple[str, ...]:
    """The statement's first ``count`` keywords (after whitespace and comments), upper-cased."""
    words: list[str] = []
    i, n = 0, len(statement)
    while i < n and len(words) < count:
        ch = statement[i]
        if ch.isspace() or ch == ";" or ch == "(":
            i += 1
        elif statement.startswith("--", i):
            end = statement.find("\n", i)
            i = n if end < 0 else end + 1
        elif statement.startswith("/*", i):
            end = statement.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch.isalpha() or ch == "_":
            j = i
            while j < n and (statement[j].isalpha() or statement[j] == "_"):
                j += 1
            words.append(statement[i:j].upper())
            i = j
        else:
            break
    return tuple(words)


def changes_nothing_existing(statement: str) -> bool:
    """Whether the statement cannot change a relation that existed before it, nor take a lock
    on one stronger than SHARE ROW EXCLUSIVE: plain data access, creating a table, type,
    sequence, function, schema or domain (not measured)."""
    words = leading_words(statement)
    if not words:
        return True
    if words[0] in _DATA_WORDS:
        return True
    return words[0] == "CREATE" and len(words) > 1 and words[1] in _NEW_OBJECTS


#: The first words of statements that a transaction block would change or refuse
#: (transaction control, ``CALL`` of a procedure that may commit, ``VACUUM``, ``CLUSTER``,
#: ``REINDEX``), and words that make a statement refuse one wherever they appear (``CREATE
#: INDEX CONCURRENTLY``, ``CREATE DATABASE``, a ``DO`` block that commits).
_OWN_TRANSACTION_FIRST = frozenset(
    {
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT",
        "RELEASE",
        "PREPARE",
        "CALL",
        "VACUUM",
        "CLUSTER",
        "REINDEX",
        "CHECKPOINT",
    }
)
_OWN_TRANSACTION_WORDS = re.compile(
    r"\b(CONCURRENTLY|DATABASE|TABLESPACE|SUBSCRIPTION|SYSTEM|COMMIT|ROLLBACK)\b", re.IGNORECASE
)


def fits_a_transaction(statement: str) -> bool:
    """Whether running ``statement`` in a transaction block of its own, then committing,
    does what running it alone in autocommit mode does (conservatively: ``CREATE INDEX
    CONCURRENTLY``, ``VACUUM``, ``CREATE DATABASE``, a ``DO`` block that commits... do not)."""
    words = leading_words(statement, 1)
    if not words or words[0] in _OWN_TRANSACTION_FIRST:
        return False
    return _OWN_TRANSACTION_WORDS.search(statement) is None


def one_line(statement: str, limit: int = 160) -> str:
    """The statement on one line, shortened to ``limit`` characters."""
    text = " ".join(statement.split()).rstrip(";")
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ------------------------------------------------------------------------------ catalog state


@dataclass
class Rel:
    oid: int
    kind: str
    schema: str
    name: str
    filenode: int

    @property
    def qualified(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    @property
    def word(self) -> str:
        return {
            "r": "table",
            "p": "table",
            "f": "foreign table",
            "m": "materialized view",
            "v": "view",
            "i": "index",
            "I": "index",
            "S": "sequence",
        }.get(self.kind, "relation")


@dataclass
class Col:
    name: str
    notnull: bool
    has_default: bool


@dataclass
class Con:
    oid: int
    relid: int
    name: str
    kind: str
    validated: bool
    index: int


@dataclass
class State:
    """What one read returned (for every user relation, or for the locked ones)."""

    rels: dict[int, Rel] = field(default_factory=dict)
    cols: dict[int, dict[int, Col]] = field(default_factory=dict)
    cons: dict[int, Con] = field(default_factory=dict)
    indexes: dict[int, int] = field(default_factory=dict)
    """index oid -> table oid."""
    scans: dict[int, int] = field(default_factory=dict)
    locks: dict[int, set[str]] = field(default_factory=dict)
    lock_timeout: str = "0"
    in_transaction: bool = True
    """Whether this transaction has written (a DDL statement inside a transaction has; one run
    outside a transaction leaves the reading transaction without a transaction id)."""

    @classmethod
    def from_json(cls, data: list[Any]) -> State:
        rels, cols, cons, indexes, scans, locks, timeout, in_tx = data
        state = cls(lock_timeout=str(timeout), in_transaction=bool(in_tx))
        for oid, kind, schema, name, filenode in rels:
            state.rels[oid] = Rel(oid, kind, schema, name, filenode)
        for relid, attnum, name, notnull, has_default in cols:
            state.cols.setdefault(relid, {})[attnum] = Col(name, notnull, has_default)
        for oid, relid, name, kind, validated, index in cons:
            state.cons[oid] = Con(oid, relid, name, kind, validated, index)
        for index, relid in indexes:
            state.indexes[index] = relid
        for relid, count in scans:
            state.scans[relid] = count
        for relid, mode in locks:
            state.locks.setdefault(relid, set()).add(mode)
        return state

    def only(self, oids: set[int]) -> State:
        """This state restricted to the relations ``oids`` (and their columns, constraints and
        indexes)."""
        return State(
            rels={k: v for k, v in self.rels.items() if k in oids},
            cols={k: v for k, v in self.cols.items() if k in oids},
            cons={k: c for k, c in self.cons.items() if c.relid in oids},
            indexes={k: t for k, t in self.indexes.items() if k in oids},
            scans=dict(self.scans),
            locks=self.locks,
            lock_timeout=self.lock_timeout,
            in_transaction=self.in_transaction,
        )


def read_json(conn: Connection, sql: str) -> Any:
    """Run ``sql`` (one text value) on the DBAPI connection under ``conn`` and parse it."""
    value = dbapi.read_json(conn, sql, prepared=True)
    assert value is not None  # every statement of the observer returns a row
    return value


def read_state(conn: Connection, sql: str) -> State:
    """Run one of the reads (:data:`READ_ALL`, :data:`READ_LOCKED`) on ``conn``."""
    return State.from_json(read_json(conn, sql))


def strongest(modes: Iterable[str]) -> str | None:
    ranked = sorted(modes, key=lambda m: _STRENGTH.get(m, -1))
    return ranked[-1] if ranked else None


# ------------------------------------------------------------------------------ measurements


@dataclass
class Measured:
    """What one statement did to the relations that existed before the revision."""

    statement: str
    line: int | None
    locks: dict[str, str] = field(default_factory=dict)
    """Relation (qualified name) -> the strongest lock held on it after the statement."""
    rewritten: list[str] = field(default_factory=list)
    """Relations with a new relfilenode (a table rewrite, an index rebuild)."""
    scanned: list[str] = field(default_factory=list)
    """Tables scanned while a constraint on them was validated (or NOT NULL set)."""
    outside_transaction: bool = False


@dataclass
class Observation:
    """Everything measured during one revision's first upgrade."""

    revision: str
    statements: list[Measured] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    committed_before: bool = False
    """The work before the revision (in the same transaction) was committed first, so that the
    locks measured are the revision's own."""


class StatementWatch:
    """The measurement of one revision's statements on one connection (see the module doc)."""

    def __init__(
        self,
        conn: Connection,
        revision: str,
        path: str | None,
        *,
        existing: set[int],
        start_locks: dict[int, set[str]],
    ) -> None:
        self.conn = conn
        self.observation = Observation(revision)
        self._path = os.path.realpath(path) if path else None
        self._files: dict[str, bool] = {}
        self._existing = existing
        """The relations that existed before the revision."""
        self._pre = State()
        """Those relations (with their columns, constraints, indexes) as they were before the
        revision: read just before its first statement that is measured (the statements before
        it change none of them), so a revision that only creates tables costs no read."""
        self._cur = State()
        self._read_before = False
        self._start_locks = start_locks
        self._dropped: set[int] = set()
        self._line: int | None = None
        self._reading = False
        self._timeout_candidate: tuple[Measured, Rel] | None = None
        self._autocommit = in_autocommit(conn)
        """env.py put the connection in AUTOCOMMIT mode: each statement commits on its own,
        and its locks end with it, before they can be read.  Each measured statement then runs
        in a transaction block of its own (committed at once, rolled back when it fails), in
        which its locks are read (:func:`fits_a_transaction`)."""
        self._wrapped = False

    # -------------------------------------------------------------- events
    def listen(self) -> None:
        from sqlalchemy import event

        event.listen(self.conn, "before_cursor_execute", self._before)
        event.listen(self.conn, "after_cursor_execute", self._after)
        if self._autocommit:
            event.listen(self.conn.engine, "handle_error", self._failed)

    def stop(self) -> None:
        from sqlalchemy import event

        if event.contains(self.conn.engine, "handle_error", self._failed):
            event.remove(self.conn.engine, "handle_error", self._failed)
        for name, fn in (
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
        ):
            if event.contains(self.conn, name, fn):
                event.remove(self.conn, name, fn)

    def _before(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if self._reading:
            return  # this watch's own statement
        self._line = self._caller_line()
        if changes_nothing_existing(statement):
            return
        if not self._read_before:
            self.read_before()
        if self._autocommit and fits_a_transaction(statement):
            self._control("BEGIN")
            self._wrapped = True

    def _control(self, statement: str) -> None:
        self._reading = True
        try:
            dbapi.execute_as_is(self.conn, statement)
        finally:
            self._reading = False

    def _failed(self, context: Any) -> None:
        """A statement failed: end the transaction block it ran in (see :attr:`_autocommit`),
        so that the connection is as autocommit mode leaves it after a failed statement."""
        if not self._wrapped or context.connection is not self.conn:
            return
        self._wrapped = False
        with contextlib.suppress(Exception):  # the error being raised is the one to report
            cursor = self.conn.connection.dbapi_connection.cursor()
            try:
                cursor.execute("ROLLBACK")
            finally:
                cursor.close()

    def read_before(self) -> None:
        """Read the relations that existed before the revision, as they still are."""
        self._read_before = True
        before = self.read(READ_ALL).only(self._existing)
        self._pre = before
        self._cur = State(
            rels=dict(before.rels),
            cols={k: dict(v) for k, v in before.cols.items()},
            cons=dict(before.cons),
            indexes=dict(before.indexes),
            scans=dict(before.scans),
        )

    def _after(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if self._reading:
            return
        line, self._line = self._line, None
        if changes_nothing_existing(statement):
            return
        try:
            self.measure(statement, line)
        finally:
            if self._wrapped:
                self._wrapped = False
                self._control("COMMIT")

    def _caller_line(self) -> int | None:
        """The line of the revision file in the current stack (innermost), if any."""
        if self._path is None:
            return None
        frame: Any = sys._getframe(1)
        files = self._files
        while frame is not None:
            name = frame.f_code.co_filename
            hit = files.get(name)
            if hit is None:
                hit = files[name] = os.path.realpath(name) == self._path
            if hit:
                return int(frame.f_lineno)
            frame = frame.f_back
        return None

    # -------------------------------------------------------------- measuring
    def read(self, sql: str) -> State:
        self._reading = True
        try:
            return read_state(self.conn, sql)
        finally:
            self._reading = False

    def measure(self, statement: str, line: int | None) -> Measured:
        """Read after ``statement`` and record what it did (called for each statement)."""
        if not self._read_before:  # pragma: no cover - read before each measured statement
            self.read_before()
        after = self.read(READ_LOCKED)
        outside = not after.in_transaction
        if outside:
            # a statement outside a transaction (autocommit_block): its locks are gone, the
            # work before it committed; compare everything
            after = self.read(READ_ALL)
            self._start_locks = {}
            self._cur.scans = {}
        written = dbapi.as_written(statement, self.conn.dialect.driver)
        measured = Measured(one_line(written), line, outside_transaction=outside)
        self.observation.statements.append(measured)
        self._compare(measured, after, outside)
        return measured

    def _compare(self, m: Measured, after: State, outside: bool) -> None:
        pre, cur = self._pre, self._cur
        obs = self.observation
        rev = obs.revision
        findings: list[Finding] = []

        def add(on: int, rule: str, fact: str, advice: str) -> None:
            """A finding of ``rule`` about the existing relation ``on`` (a table, or the view
            dropped or renamed)."""
            rel = pre.rels.get(on)
            top = strongest(after.locks.get(on, set()))
            findings.append(
                Finding(
                    rule,
                    rev,
                    m.statement,
                    fact,
                    advice,
                    m.line,
                    table=f"{rel.schema}.{rel.name}" if rel is not None else None,
                    lock=MODE_NAMES[top] if top is not None else None,
                    rewrite=rule == "table-rewrite" or on in rewritten_tables,
                )
            )

        touched = [
            oid
            for oid in (after.rels if outside else after.locks)
            if oid in pre.rels and oid not in self._dropped
        ]
        if outside:
            touched += [o for o in pre.rels if o not in after.rels and o not in self._dropped]
        for oid in touched:
            held = after.locks.get(oid, set())
            top = strongest(held)
            if top is not None:
                m.locks[pre.rels[oid].qualified] = MODE_NAMES[top]
        no_timeout = after.lock_timeout in ("0", "")
        rewritten_tables: set[int] = set()
        renames_and_drops: list[tuple[int, str]] = []  # (table oid, what)
        dropped_indexes: dict[tuple[int, str], str] = {}
        """(table oid, name) -> qualified name of indexes gone after the statement: a type
        change drops and rebuilds the indexes on the column under the same name."""

        def holding(oid: int) -> str:
            top = strongest(after.locks.get(oid, set()))
            return f"holding {MODE_NAMES[top]}" if top else "outside a transaction"

        def blocks_writes(oid: int) -> bool:
            return bool(after.locks.get(oid, set()) & _BLOCKS_WRITES)

        def scanned(oid: int) -> bool:
            return after.scans.get(oid, 0) > cur.scans.get(oid, 0)

        # relations dropped, renamed, rewritten
        for oid in sorted(touched, key=lambda o: pre.rels[o].kind not in _TABLES):
            old = cur.rels.get(oid) or pre.rels[oid]
            new = after.rels.get(oid)
            if new is None:
                self._dropped.add(oid)
                owner = pre.indexes.get(oid)
                if old.kind in ("r", "p"):
                    add(
                        oid,
                        "destructive",
                        f"dropped table {old.qualified}, which existed at the parent: its data "
                        "is gone (the downgrade cannot bring it back), and code of the previous "
                        "release that still uses it fails",
                        "stop using the table in a release first, keep a copy of its data if "
                        "it matters, and drop it in a later revision",
                    )
                elif old.kind in ("v", "m", "f"):
                    add(
                        oid,
                        "backward-incompatible",
                        f"dropped {old.word} {old.qualified}: code of the previous release that "
                        "reads it fails",
                        "stop using it in a release first, and drop it in a later revision",
                    )
                elif owner is not None and owner not in self._dropped and owner in after.rels:
                    dropped_indexes[(owner, old.name)] = old.qualified
                continue
            if new.name != old.name or new.schema != old.schema:
                if old.kind in ("r", "p", "v", "m", "f"):
                    add(
                        oid,
                        "backward-incompatible",
                        f"renamed {old.word} {old.qualified} to {new.qualified}: code of the "
                        "previous release that still uses the old name fails during the deploy",
                        "add the new name beside the old one (e.g. a view), move the code over, "
                        "and drop the old name in a later release",
                    )
                    renames_and_drops.append((oid, f"renamed {old.word} {old.qualified}"))
                elif old.kind in ("i", "I"):
                    owner = pre.indexes.get(oid)
                    if owner is not None:
                        renames_and_drops.append((owner, f"renamed index {old.qualified}"))
            if old.filenode and new.filenode and new.filenode != old.filenode:
                if old.kind in _TABLES:
                    rewritten_tables.add(oid)
                    m.rewritten.append(old.qualified)
                    add(
                        oid,
                        "table-rewrite",
                        f"rewrote {old.word} {old.qualified} (new relfilenode) {holding(oid)}",
                        "on a large table, add a new column, backfill it in batches, and swap",
                    )
                elif old.kind in ("i", "I"):
                    owner = pre.indexes.get(oid)
                    if owner is not None and owner not in rewritten_tables:
                        m.rewritten.append(old.qualified)
                        tname = pre.rels[owner].qualified if owner in pre.rels else "?"
                        add(
                            owner,
                            "table-rewrite",
                            f"rebuilt index {old.qualified} of table {tname} (new relfilenode) "
                            f"{holding(owner)}",
                            "rebuild indexes with REINDEX INDEX CONCURRENTLY (PostgreSQL 12+) "
                            "inside op.get_context().autocommit_block()",
                        )
            cur.rels[oid] = new

        # columns, constraints and indexes of the existing tables touched
        for oid in touched:
            old_rel = pre.rels[oid]
            if old_rel.kind not in _TABLES or oid in self._dropped:
                continue
            table = old_rel.qualified
            before_cols = cur.cols.get(oid, {})
            after_cols = after.cols.get(oid, {})
            pre_cols = pre.cols.get(oid, {})
            validated_by_scan = scanned(oid) and oid not in rewritten_tables and not outside
            for attnum, col in before_cols.items():
                new_col = after_cols.get(attnum)
                if attnum not in pre_cols:
                    continue  # added by this revision
                if new_col is None:
                    add(
                        oid,
                        "destructive",
                        f"dropped column {table}.{col.name}, which existed at the parent: its "
                        "data is gone (the downgrade cannot bring it back), and code of the "
                        "previous release that still uses it fails",
                        "stop using the column in a release first (e.g. mark it deferred or "
                        "remove it from the models), keep a copy of its data if it matters, and "
                        "drop it in a later revision",
                    )
                    renames_and_drops.append((oid, f"dropped column {table}.{col.name}"))
                    continue
                if new_col.name != col.name:
                    add(
                        oid,
                        "backward-incompatible",
                        f"renamed column {table}.{col.name} to {new_col.name}: code of the "
                        "previous release that still uses the old name fails during the deploy",
                        "add the new column, write both, backfill, move the reads over, and "
                        "drop the old column in a later release",
                    )
                    renames_and_drops.append((oid, f"renamed column {table}.{col.name}"))
                if new_col.notnull and not col.notnull:
                    if validated_by_scan:
                        m.scanned.append(table)
                    if validated_by_scan and blocks_writes(oid):
                        add(
                            oid,
                            "validating-constraint",
                            f"set NOT NULL on {table}.{new_col.name} by scanning table {table} "
                            f"{holding(oid)}",
                            f"add CHECK ({new_col.name} IS NOT NULL) NOT VALID, VALIDATE it in a "
                            "later revision, then SET NOT NULL (it uses the valid CHECK and "
                            "skips the scan)",
                        )
                    if not new_col.has_default:
                        add(
                            oid,
                            "backward-incompatible",
                            f"made {table}.{new_col.name} NOT NULL without a default: INSERTs "
                            "of the previous release that leave it out fail",
                            "give the column a server default first, or make it NOT NULL once "
                            "no running code inserts without it",
                        )
            for attnum, new_col in after_cols.items():
                if attnum in before_cols or not new_col.notnull or new_col.has_default:
                    continue
                add(
                    oid,
                    "backward-incompatible",
                    f"added column {table}.{new_col.name} NOT NULL without a default: it fails "
                    "on a table with rows, and INSERTs of the previous release that leave it "
                    "out fail",
                    "add it with a server default (no rewrite since PostgreSQL 11), or nullable "
                    "and make it NOT NULL later",
                )
            cur.cols[oid] = dict(after_cols)
            # constraints
            new_indexes = {i for i, t in after.indexes.items() if t == oid and i not in cur.indexes}
            backing: set[int] = set()
            after_cons = {k: c for k, c in after.cons.items() if c.relid == oid}
            for con_oid, con in after_cons.items():
                old_con = cur.cons.get(con_oid)
                if con.kind == "n":
                    continue  # NOT NULL constraints (PostgreSQL 18): seen as the column's flag
                if con.index and con.index in new_indexes:
                    backing.add(con.index)
                newly_valid = con.validated and (old_con is None or not old_con.validated)
                if newly_valid and validated_by_scan:
                    m.scanned.append(table)
                if newly_valid and validated_by_scan and blocks_writes(oid):
                    word = {
                        "c": "CHECK",
                        "f": "FOREIGN KEY",
                        "u": "UNIQUE",
                        "p": "PRIMARY KEY",
                        "x": "EXCLUDE",
                    }.get(con.kind, "constraint")
                    how = "validated" if old_con is not None else "added"
                    if con.kind in ("u", "p", "x"):
                        fact = (
                            f"{how} {word} constraint {con.name} by building a new index on "
                            f"table {table} {holding(oid)}"
                        )
                        advice = (
                            "build the unique index first with op.create_index(..., "
                            "unique=True, postgresql_concurrently=True) inside "
                            "op.get_context().autocommit_block(), then add the constraint "
                            f"USING INDEX (ALTER TABLE {table} ADD CONSTRAINT {con.name} "
                            f"{word} USING INDEX ...)"
                        )
                    else:
                        fact = (
                            f"{how} {word} constraint {con.name} by scanning table {table} "
                            f"{holding(oid)}"
                        )
                        maker = {"f": "op.create_foreign_key", "c": "op.create_check_constraint"}
                        how_to = (
                            f"{maker[con.kind]}(..., postgresql_not_valid=True)"
                            if con.kind in maker
                            else "NOT VALID"
                        )
                        advice = (
                            f"add it NOT VALID ({how_to}) and run ALTER TABLE {table} VALIDATE "
                            f"CONSTRAINT {con.name} in a later revision (it scans without "
                            "blocking writes)"
                        )
                    add(oid, "validating-constraint", fact, advice)
            for con_oid, old_con in list(cur.cons.items()):
                if old_con.relid != oid:
                    continue
                if con_oid not in after_cons:
                    del cur.cons[con_oid]
                    if con_oid in pre.cons and old_con.kind != "n" and not old_con.index:
                        renames_and_drops.append(
                            (oid, f"dropped constraint {old_con.name} of table {table}")
                        )
            for con_oid, con in after_cons.items():
                old_con = cur.cons.get(con_oid)
                if (
                    old_con is not None
                    and old_con.name != con.name
                    and con_oid in pre.cons
                    and con.kind != "n"  # PostgreSQL 18 renames them with their column
                    and not con.index  # its index is renamed with it (reported)
                ):
                    renames_and_drops.append(
                        (oid, f"renamed constraint {old_con.name} of table {table}")
                    )
                cur.cons[con_oid] = con
            # index builds
            for index in sorted(new_indexes):
                cur.indexes[index] = oid
                name = after.rels[index].qualified if index in after.rels else str(index)
                short = after.rels[index].name if index in after.rels else ""
                if dropped_indexes.pop((oid, short), None) is not None:
                    # rebuilt under its name (a type change): part of the table's rewrite
                    if oid not in rewritten_tables:
                        m.rewritten.append(name)
                        add(
                            oid,
                            "table-rewrite",
                            f"rebuilt index {name} of table {table} {holding(oid)}",
                            "on a large table, add a new column, backfill it in batches, and swap",
                        )
                    continue
                if index in backing or outside or not blocks_writes(oid):
                    continue
                add(
                    oid,
                    "blocking-index-build",
                    f"built index {name} on table {table} {holding(oid)} (writes to {table} "
                    "wait for the whole build)",
                    "create it with op.create_index(..., postgresql_concurrently=True) inside "
                    "op.get_context().autocommit_block()",
                )
            for index in [i for i, t in cur.indexes.items() if t == oid]:
                if index not in after.indexes:
                    del cur.indexes[index]
            if oid in after.scans:
                cur.scans[oid] = after.scans[oid]

        for (table_oid, _), name in dropped_indexes.items():
            renames_and_drops.append((table_oid, f"dropped index {name}"))
        # renames and drops on existing tables: a brief ACCESS EXCLUSIVE
        by_table: dict[int, list[str]] = {}
        for oid, what in renames_and_drops:
            if what not in by_table.setdefault(oid, []):
                by_table[oid].append(what)
        for oid, whats in by_table.items():
            if no_timeout and "AccessExclusiveLock" in after.locks.get(oid, set()):
                name = pre.rels[oid].qualified
                add(
                    oid,
                    "access-exclusive",
                    f"{', '.join(whats)} holding ACCESS EXCLUSIVE on table {name}: blocks reads "
                    "and writes "
                    "briefly; needs lock_timeout",
                    "set a lock_timeout first (op.execute(\"SET lock_timeout = '5s'\") at the "
                    "start of upgrade()), so a long query on the table makes the migration "
                    "fail and retry instead of queueing every other query behind it",
                )
        # the first ACCESS EXCLUSIVE on an existing table with no lock_timeout
        if no_timeout and self._timeout_candidate is None:
            for oid in touched:
                if pre.rels[oid].kind in _TABLES and "AccessExclusiveLock" in (
                    after.locks.get(oid, set()) - self._start_locks.get(oid, set())
                ):
                    self._timeout_candidate = (m, pre.rels[oid])
                    break
        obs.findings.extend(findings)

    def finish(self) -> Observation:
        obs = self.observation
        if self._timeout_candidate is not None and not any(
            f.rule == "access-exclusive" for f in obs.findings
        ):
            m, rel = self._timeout_candidate
            table = rel.qualified
            obs.findings.append(
                Finding(
                    "no-lock-timeout",
                    obs.revision,
                    m.statement,
                    f"took ACCESS EXCLUSIVE on table {table} with no lock_timeout set: while it "
                    f"waits behind a long query, every read and write of {table} waits behind "
                    "it",
                    'set a lock_timeout at the start of upgrade() (op.execute("SET '
                    "lock_timeout = '5s'\")) and retry the deploy when it fails",
                    m.line,
                    table=f"{rel.schema}.{rel.name}",
                    lock="ACCESS EXCLUSIVE",
                    rewrite=table in m.rewritten,
                )
            )
        return obs


# ------------------------------------------------------------------------------ the observer


def _commit_work_so_far(conn: Connection) -> bool:
    """Commit the migration run's work before this revision, as Alembic's
    ``autocommit_block()`` does (the documented way to end its transaction mid-run); False when
    the connection is not the one of a running Alembic migration context that owns the
    transaction."""
    try:
        from alembic import context as environment

        migration = environment.get_context()
    except Exception:
        return False
    if migration.connection is not conn:
        return False
    block = migration.autocommit_block()
    try:
        block.__enter__()
    except (AssertionError, AttributeError):
        return False  # env.py began the transaction itself: Alembic cannot end it
    block.__exit__(None, None, None)
    return True


class SafetyObserver:
    """A :class:`~pytest_schemaguard.migrations.runner.StepObserver` measuring each revision's
    first upgrade (see the module doc); the results are in :attr:`observations`."""

    def __init__(
        self,
        paths: Mapping[str, str],
        *,
        wanted: Callable[[str], bool] = lambda rev: True,
    ) -> None:
        self.paths = dict(paths)
        """Revision -> its file (as Python imported it)."""
        self.wanted = wanted
        self.observations: dict[str, Observation] = {}
        self.failed: set[str] = set()
        self._watch: StatementWatch | None = None

    def before_upgrade(self, conn: Connection, rev: str) -> None:
        if not self.wanted(rev):
            return
        oids, held = read_json(conn, READ_START)
        locks: dict[int, set[str]] = {}
        for relid, mode in held:
            locks.setdefault(relid, set()).add(mode)
        committed = False
        if any(modes & _MASKING for modes in locks.values()):
            committed = _commit_work_so_far(conn)
            if committed:
                locks = {}
        watch = StatementWatch(
            conn, rev, self.paths.get(rev), existing=set(oids), start_locks=locks
        )
        watch.observation.committed_before = committed
        watch.listen()
        self._watch = watch

    def after_upgrade(self, conn: Connection, rev: str) -> None:
        watch, self._watch = self._watch, None
        if watch is None or watch.observation.revision != rev:
            return
        watch.stop()
        self.observations[rev] = watch.finish()

    def upgrade_failed(self, rev: str, error: StepError) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()
        self.failed.add(rev)
