"""Reading the catalog again: only the relations whose catalog rows changed are printed.

Between two migration steps most of a schema stays as it was, yet a full read prints every
column default, constraint and index definition again, and that printing is most of its cost.
An incremental read asks the server for a *fingerprint* of each relation and prints only the
relations whose fingerprint is not the one the previous read on the same session saw; the rows
of the others are taken from that read.

First, though, one small prepared statement asks whether anything in the catalog can have
changed since the previous read; when nothing can, that read's rows are the answer and no
fingerprint is computed.  Nothing can have changed when all of these are as they were then:

- the *mark*: each read sets the transaction-local setting ``schemaguard.catalog_read`` to a
  value of its own.  Finding it again means the same transaction, in which nothing that was
  under way at the previous read was rolled back since (a rollback to a savepoint restores the
  value the setting had before the savepoint; the end of the transaction removes it);
- this session's count of the rows it inserted, updated and deleted in the catalogs during the
  transaction (its statistics, ``pg_stat_get_xact_tuples_*``, which also count the writes of a
  subtransaction rolled back since).  A session with ``track_counts`` off gets no such count
  and always computes the fingerprints; one that turns it off and on again between two reads
  and changes the schema meanwhile is not noticed;
- at ``READ COMMITTED``, the snapshot (``pg_current_snapshot()``: another transaction that
  ended since shows there) and the indexes whose flags are not all set (``CREATE INDEX
  CONCURRENTLY`` sets them in place, in transactions that have no id); at the other isolation
  levels, where the snapshot is the transaction's, the server's WAL insert position (every
  change of a catalog row writes WAL);
- the session's settings that change how values print (``DateStyle``, ``TimeZone``...).

A relation's fingerprint covers every catalog row its printed rows come from: its ``pg_class``
row and schema name, its columns, defaults, constraints, indexes (and their ``pg_class`` rows),
triggers, policies, rewrite rules, sequence parameters, inheritance and partitioning rows, its
own dependency rows (an owned sequence's column, a parent), and the comments on all of them.
A row is identified by its version (``xmin``, ``cmin``, ``ctid``), hashed with the catalog it
lies in into a 64-bit number; a relation's fingerprint is the count and the sum of those.  An
``UPDATE`` gives a row another version and an inserted or deleted row changes the set (after a
rollback to a savepoint the rows are again the very versions read before it).  The flags of
``pg_index`` that ``CREATE INDEX CONCURRENTLY`` may set in place are read as values.

What a relation prints of *other* objects is their names: a column's type, a default's
sequence or function, a foreign key's referenced table and columns, a view's tables, an
inherited parent, an owned sequence's column.  PostgreSQL records each such reference in
``pg_depend``.  References to types, functions, collations, operators... are part of the
fingerprint as their descriptions (``pg_describe_object``), so renaming one changes it.  So are
the columns of other relations that a foreign key references or that own a sequence, as their
relation's schema and name and their own names: adding a column to a referenced table prints
again only the table.  For its other references to relations of the snapshot (a view's tables,
an inherited parent, a default's sequence), a relation is printed again whenever the referenced
one's schema, name or column names changed.  When the settings that change how values print (read by
the first statement) or the role names policies print (read with the fingerprints) differ from
the previous read's, everything is printed again.

Nothing here is trusted blindly: with ``SCHEMAGUARD_CHECK_READS=1`` in the environment, every
incremental read is compared with a full read of the same catalog, and a difference raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.generators

from pytest_schemaguard.dbapi import execute_as_is, row_tuples, sql_literal
from pytest_schemaguard.snapshot.introspect.ddl_log import (
    COUNTED_CATALOGS,
    COUNTER,
    LOG_SETTINGS,
    reset_with,
)
from pytest_schemaguard.snapshot.introspect.queries import (
    FIRST_SECTIONS,
    PER_RELATION_SECTIONS,
    PRELUDE,
    SECOND_SECTIONS,
    fill,
    query,
)
from pytest_schemaguard.snapshot.introspect.reading import NO_JIT, statement_name

__all__ = [
    "CHECK_READS_ENV",
    "COUNTED_CATALOGS",
    "Also",
    "Catalog",
    "check",
    "read_incrementally",
    "read_incrementally_sqlalchemy",
]

#: The rows of each statement run with a read (``also``), as tuples.
Also = tuple[tuple[tuple[Any, ...], ...], ...]

#: Set to ``1`` to compare every incremental read with a full read (slow; for tests).
CHECK_READS_ENV = "SCHEMAGUARD_CHECK_READS"

#: Fingerprints and the relations to print again.  ``objects`` maps every object that belongs
#: to a relation of the snapshot (the relation, its indexes, defaults, constraints, triggers,
#: policies and rules) to it, by (catalog, object id).  Every object a snapshot reads was created
#: after ``initdb``, so each scan starts at the first user object id, where an index on the
#: relation (or object) id serves.  ``todo`` picks the relations to print by ``= ANY`` of an
#: array, which the planner takes for a few rows: the sections then look up those relations'
#: rows by index instead of hashing whole catalogs (the plan is made once, generic).
_FINGERPRINTS = r""",
objects AS MATERIALIZED (
    SELECT 'pg_class'::regclass::oid AS classid, rel.oid AS objid, rel.oid AS rel FROM rel
    UNION ALL
    SELECT 'pg_class'::regclass::oid, i.indexrelid, i.indrelid
    FROM pg_index i JOIN rel ON rel.oid = i.indrelid
    WHERE i.indrelid >= %(first_user_oid)s
    UNION ALL
    SELECT 'pg_attrdef'::regclass::oid, ad.oid, ad.adrelid
    FROM pg_attrdef ad JOIN rel ON rel.oid = ad.adrelid
    WHERE ad.adrelid >= %(first_user_oid)s
    UNION ALL
    SELECT 'pg_constraint'::regclass::oid, con.oid, con.conrelid
    FROM pg_constraint con JOIN rel ON rel.oid = con.conrelid
    WHERE con.conrelid >= %(first_user_oid)s
    UNION ALL
    SELECT 'pg_trigger'::regclass::oid, tg.oid, tg.tgrelid
    FROM pg_trigger tg JOIN rel ON rel.oid = tg.tgrelid
    WHERE tg.tgrelid >= %(first_user_oid)s AND NOT tg.tgisinternal
    UNION ALL
    SELECT 'pg_policy'::regclass::oid, p.oid, p.polrelid
    FROM pg_policy p JOIN rel ON rel.oid = p.polrelid
    WHERE p.polrelid >= %(first_user_oid)s
    UNION ALL
    SELECT 'pg_rewrite'::regclass::oid, r.oid, r.ev_class
    FROM pg_rewrite r JOIN rel ON rel.oid = r.ev_class
    WHERE r.ev_class >= %(first_user_oid)s
),
versions(rel, v, names) AS (
%(versions)s
),
fingerprints AS (
    SELECT rel, count(*) || ':' || sum(v) || '/' || coalesce(sum(names), 0) AS fp
    FROM versions GROUP BY rel
),
known(oid, fp) AS (SELECT * FROM unnest($1::oid[], $2::text[])),
changed AS (
    SELECT f.rel FROM fingerprints f LEFT JOIN known k ON k.oid = f.rel
    WHERE k.fp IS DISTINCT FROM f.fp
),
renamed AS (
    SELECT f.rel FROM fingerprints f JOIN known k ON k.oid = f.rel
    WHERE split_part(k.fp, '/', 2) <> split_part(f.fp, '/', 2)
),
stale AS (
    SELECT rel FROM changed
    UNION
    SELECT o.rel FROM pg_depend d
    JOIN objects o ON o.classid = d.classid AND o.objid = d.objid
    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT rel FROM renamed)
      AND NOT (%(column_reference)s)
),
todo AS (SELECT rel.* FROM rel WHERE rel.oid = ANY (ARRAY(SELECT rel FROM stale)))
"""

#: The classes of the objects in ``objects``.
_OBJECT_CLASSES = (
    "ARRAY['pg_class'::regclass, 'pg_attrdef'::regclass, 'pg_constraint'::regclass, "
    "'pg_trigger'::regclass, 'pg_policy'::regclass, 'pg_rewrite'::regclass]::oid[]"
)


def _version(alias: str, tag: int, prefix: str = "") -> str:
    """A number for a catalog row's version (its ``xmin``, ``cmin`` and ``ctid``, as columns
    ``prefix`` + ``xmin``... of ``alias``), different for each catalog (``tag``): the versions of
    a relation's rows are added up.  (``hashtidextended`` would spare the ``ctid`` its text, but
    PostgreSQL 13 does not have it.)"""
    ctid, xmin, cmin = (f"{alias}.{prefix}{column}" for column in ("ctid", "xmin", "cmin"))
    return (
        f"hashtextextended({ctid}::text, hashint8extended("
        f"({xmin}::text::int8 << 32) | {cmin}::text::int8, {tag}))"
    )


#: A ``pg_depend`` row of an object in ``objects`` that is the relation's own dependency row
#: (a sequence's owning column, an inherited parent).
_OWN_DEPENDENCY = "d.classid = 'pg_class'::regclass AND d.objid = o.rel AND d.objsubid = 0"

#: A ``pg_depend`` row that names an object outside the relations of the snapshot (a type, a
#: function, a collation...).
_REFERENCE = (
    "d.refclassid <> 'pg_namespace'::regclass "
    "AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid IN ("
    "SELECT x.objid FROM objects x WHERE x.classid = 'pg_class'::regclass))"
)

#: A ``pg_depend`` row by which a relation names a column of another (or its own): a foreign
#: key's referenced column, a sequence's owning column.  What it prints of that column is its
#: relation's schema and name and the column's name, which its description gives and which is
#: part of the fingerprint; so it is not printed again for any other change of that relation
#: (a column added, say).
_COLUMN_REFERENCE = (
    "d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 "
    "AND (d.classid = 'pg_constraint'::regclass "
    "OR (d.classid = 'pg_class'::regclass AND d.objid = o.rel))"
)

#: The rows a relation's fingerprint covers, as (relation, version, names, FROM ... [WHERE ...]).
#: ``names`` is what other relations print of it: its schema, name and column names.
_VERSIONED: tuple[tuple[str, str, str, str], ...] = (
    (
        # its pg_class row, whose version the rel CTE carries
        "rel.oid",
        _version("rel", 1, "row_"),
        "hashtextextended(rel.nspname || '.' || rel.relname, 0)",
        "rel",
    ),
    (
        "a.attrelid",
        _version("a", 2),
        "CASE WHEN NOT a.attisdropped THEN hashtextextended(a.attname, a.attnum) END",
        "pg_attribute a JOIN rel ON rel.oid = a.attrelid "
        "WHERE a.attrelid >= %(first_user_oid)s AND a.attnum > 0",
    ),
    (
        "ad.adrelid",
        _version("ad", 3),
        "NULL",
        "pg_attrdef ad JOIN rel ON rel.oid = ad.adrelid WHERE ad.adrelid >= %(first_user_oid)s",
    ),
    (
        "con.conrelid",
        _version("con", 4),
        "NULL",
        "pg_constraint con JOIN rel ON rel.oid = con.conrelid "
        "WHERE con.conrelid >= %(first_user_oid)s",
    ),
    (
        "i.indrelid",
        # CREATE INDEX CONCURRENTLY may set these flags in place: read as values
        f"hashint8extended({_version('i', 5)} # {_version('ic', 6)}, "
        "i.indisvalid::int * 4 + i.indisready::int * 2 + i.indislive::int)",
        "NULL",
        "pg_index i JOIN rel ON rel.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid "
        "WHERE i.indrelid >= %(first_user_oid)s",
    ),
    (
        "tg.tgrelid",
        _version("tg", 7),
        "NULL",
        "pg_trigger tg JOIN rel ON rel.oid = tg.tgrelid "
        "WHERE tg.tgrelid >= %(first_user_oid)s AND NOT tg.tgisinternal",
    ),
    (
        "p.polrelid",
        _version("p", 8),
        "NULL",
        "pg_policy p JOIN rel ON rel.oid = p.polrelid WHERE p.polrelid >= %(first_user_oid)s",
    ),
    (
        "r.ev_class",
        _version("r", 9),
        "NULL",
        "pg_rewrite r JOIN rel ON rel.oid = r.ev_class WHERE r.ev_class >= %(first_user_oid)s",
    ),
    (
        "s.seqrelid",
        _version("s", 10),
        "NULL",
        "pg_sequence s JOIN rel ON rel.oid = s.seqrelid WHERE s.seqrelid >= %(first_user_oid)s",
    ),
    (
        "h.inhrelid",
        _version("h", 11),
        "NULL",
        "pg_inherits h JOIN rel ON rel.oid = h.inhrelid WHERE h.inhrelid >= %(first_user_oid)s",
    ),
    (
        "pt.partrelid",
        _version("pt", 12),
        "NULL",
        "pg_partitioned_table pt JOIN rel ON rel.oid = pt.partrelid "
        "WHERE pt.partrelid >= %(first_user_oid)s",
    ),
    (
        # its own dependency rows, and the descriptions of what it names outside the relations
        # of the snapshot (types, functions, collations...) and of the columns it names
        "o.rel",
        f"CASE WHEN {_OWN_DEPENDENCY} THEN {_version('d', 13)} ELSE 0 END "
        f"# CASE WHEN ({_REFERENCE}) OR ({_COLUMN_REFERENCE}) THEN hashtextextended("
        "d.refclassid::text || ' ' || d.refobjid::text || ' ' || d.refobjsubid::text || ' ' "
        "|| coalesce(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), '?'), 15) "
        "ELSE 0 END",
        "NULL",
        "pg_depend d JOIN objects o ON o.classid = d.classid AND o.objid = d.objid "
        f"WHERE d.classid = ANY ({_OBJECT_CLASSES}) AND d.objid >= %(first_user_oid)s "
        f"AND (({_OWN_DEPENDENCY}) OR ({_REFERENCE}) OR ({_COLUMN_REFERENCE}))",
    ),
    (
        "o.rel",
        _version("d", 14),
        "NULL",
        "pg_description d JOIN objects o ON o.classid = d.classoid AND o.objid = d.objoid "
        "WHERE d.objoid >= %(first_user_oid)s",
    ),
)

_VERSIONS = "\n    UNION ALL\n".join(
    f"    SELECT {rel}, {version}, {names}\n    FROM {source}"
    for rel, version, names, source in _VERSIONED
)


#: What else a relation's rows depend on: the settings that change how values print.
_SETTINGS = r"""pg_catalog.json_build_array(
        pg_catalog.current_setting('DateStyle'), pg_catalog.current_setting('IntervalStyle'),
        pg_catalog.current_setting('TimeZone'), pg_catalog.current_setting('extra_float_digits'),
        pg_catalog.current_setting('bytea_output'), pg_catalog.current_setting('lc_monetary'),
        pg_catalog.current_setting('standard_conforming_strings'),
        pg_catalog.current_setting('quote_all_identifiers'))::pg_catalog.text"""

#: ... and the role names policies print.
_ROLES = "(SELECT md5(string_agg(r.oid || ' ' || r.rolname, ',' ORDER BY r.oid)) FROM pg_roles r)"

#: The setting each read sets (for the rest of the transaction) to a value of its own.  When the
#: next read finds it, the transaction is the same and nothing that was under way at the
#: previous read was rolled back since: a rollback to a savepoint restores the value it had
#: before the savepoint, and the end of the transaction removes it.
READ_MARK = "schemaguard.catalog_read"

#: What else must be as it was at the previous read for the catalog to be unchanged: this
#: session's count of the rows it wrote to the catalogs in this transaction (NULL when it counts
#: none); and, at ``READ COMMITTED``, the snapshot (another transaction that ended since shows
#: there) and the indexes whose flags are not all set (``CREATE INDEX CONCURRENTLY`` sets them
#: in place, in transactions without an id); at other isolation levels, where the snapshot is
#: the transaction's, the server's WAL insert position (every change of a catalog row writes
#: WAL; NULL on a standby).
_STAMP = (
    f"{COUNTER} || ' ' || CASE "
    "WHEN pg_catalog.current_setting('transaction_isolation') = 'read committed' THEN "
    "pg_catalog.pg_current_snapshot()::pg_catalog.text || ' ' || (SELECT coalesce("
    "pg_catalog.string_agg(i.indexrelid || ' ' || i.indisvalid || i.indisready || i.indislive, "
    "',' ORDER BY i.indexrelid), '') FROM pg_catalog.pg_index i "
    "WHERE NOT (i.indisvalid AND i.indisready AND i.indislive)) "
    "WHEN NOT pg_catalog.pg_is_in_recovery() THEN "
    "'wal ' || pg_catalog.pg_current_wal_insert_lsn()::pg_catalog.text END"
)


#: The first statement of a read on a session that may not have prepared :data:`_CHECK`:
#: whether it has.  Every name is schema-qualified: it runs on the caller's ``search_path``,
#: as does :data:`_CHECK`.
def _prepared(names: str) -> str:
    """Which of the statements ``names`` (a ``text[]``) the session has prepared."""
    return (
        "ARRAY(SELECT name::pg_catalog.text FROM pg_catalog.pg_prepared_statements "
        f"WHERE name = ANY ({names}))"
    )


_PRESENT = "SELECT " + _prepared("%(names)s")

#: The planner settings a logged read's catalog query is planned under: all off.  Its generic
#: plan is made once, at the session's first logged read, when the schema is often still
#: small; with the catalogs' sizes then, the planner joins the few relations the log names to
#: whole catalogs by hashing sequential scans, and the plan keeps doing that as the schema
#: grows (2.8 ms a read at 600 revisions, 2.0 ms planned without them).  Planned with these
#: off, each per-relation section follows the catalogs' indexes from the relations to print:
#: its cost grows with what changed, not with the schema.
_JOIN_SETTINGS = ("enable_hashjoin", "enable_mergejoin", "enable_seqscan")
_INDEXED_JOINS = "SELECT " + ", ".join(
    f"pg_catalog.set_config('{name}', 'off', true)" for name in _JOIN_SETTINGS
)

#: Whether the catalog can have changed since the previous read (its settings, stamp and
#: mark).  Prepared, like the catalog query: planning it would cost more than running it.
_CHECK = (
    f"SELECT {_SETTINGS}, {_STAMP}, pg_catalog.current_setting('{READ_MARK}', true), "
    + ", ".join(f"pg_catalog.current_setting('{name}', true)" for name in LOG_SETTINGS)
    + ", pg_catalog.current_setting('search_path'), "
    "pg_catalog.current_setting('plan_cache_mode'), pg_catalog.current_setting('jit'), "
    + "".join(f"pg_catalog.current_setting('{name}'), " for name in _JOIN_SETTINGS)
    + _prepared("$1")
)
"""... and, like :data:`_PRESENT`, the session's ``search_path``, ``plan_cache_mode``, ``jit``
and :data:`_JOIN_SETTINGS` and
which of the read's statements (``$1``, ``text[]``) are prepared: a read whose session
prepared it before runs it straight away (see :data:`_GUARD`)."""

#: The savepoint a read runs :data:`_CHECK` in when the session prepared it at an earlier read:
#: something may have deallocated it since (``DEALLOCATE ALL`` in a migration, through the
#: driver or in a ``DO`` block), and a failed ``EXECUTE`` must not end the caller's
#: transaction.  Rolled back to only then; released in the same round trip otherwise.
_GUARD = "schemaguard_read"


@functools.cache
def incremental_query(server_version: int, exclude_tables: tuple[str, ...]) -> str:
    """The incremental catalog query: takes the known relations and their fingerprints
    (``oid[]``, ``text[]``), returns every fingerprint, the relations printed again and their
    rows, and every section that is not per relation, as one JSON document."""
    sections = dict(FIRST_SECTIONS + SECOND_SECTIONS)
    keys = [
        "'server_version', current_setting('server_version_num')::int",
        f"'roles', {_ROLES}",
        "'fingerprints', (SELECT coalesce(json_agg(json_build_array(rel, fp)), '[]') "
        "FROM fingerprints)",
        "'stale', (SELECT coalesce(json_agg(rel), '[]') FROM stale)",
    ]
    for name, sql in sections.items():
        own = "todo" if name in PER_RELATION_SECTIONS else "rel"
        keys.append(f"'{name}', ({fill(sql, server_version, own_rel=own)})")
    body = "\nSELECT json_build_object(\n" + ",\n".join(keys) + "\n)::text\n"
    sql = (
        PRELUDE
        + _FINGERPRINTS.replace("%(versions)s", _VERSIONS).replace(
            "%(column_reference)s", _COLUMN_REFERENCE
        )
        + body
    )
    return fill(sql, server_version, exclude_tables=exclude_tables, row_version=True)


#: The relations a logged read prints (see :mod:`~.ddl_log`): those the log names (``$1``) or
#: whose objects it names (their catalogs and ids, ``$2`` and ``$3``), every relation of their
#: inheritance trees (a column added to a parent is added to its children; a partition
#: attached changes the partition), and the sequences they own or the table that owns them (an
#: identity's options, which ``ALTER TABLE`` changes); looked up by index, with the conditions
#: of ``rel``.  No fingerprint is computed: the relations printed get an unknown one, which the
#: next read that computes fingerprints prints again.
_LOGGED = r""",
logged AS (
    SELECT coalesce((SELECT i.indrelid FROM pg_index i WHERE i.indexrelid = x.oid), x.oid) AS oid
    FROM pg_catalog.unnest($1::pg_catalog.oid[]) x(oid)
    UNION ALL
    SELECT CASE p.classid
        WHEN 'pg_attrdef'::regclass THEN
            (SELECT ad.adrelid FROM pg_attrdef ad WHERE ad.oid = p.objid)
        WHEN 'pg_constraint'::regclass THEN
            (SELECT con.conrelid FROM pg_constraint con WHERE con.oid = p.objid)
        WHEN 'pg_trigger'::regclass THEN
            (SELECT tg.tgrelid FROM pg_trigger tg WHERE tg.oid = p.objid)
        WHEN 'pg_policy'::regclass THEN
            (SELECT pol.polrelid FROM pg_policy pol WHERE pol.oid = p.objid)
        WHEN 'pg_rewrite'::regclass THEN
            (SELECT r.ev_class FROM pg_rewrite r WHERE r.oid = p.objid)
        WHEN 'pg_type'::regclass THEN  -- a composite type's relation
            (SELECT t.typrelid FROM pg_type t WHERE t.oid = p.objid)
    END
    FROM unnest($2::pg_catalog.oid[], $3::pg_catalog.oid[]) p(classid, objid)
),
family(oid) AS (
    SELECT oid FROM logged
    UNION
    SELECT CASE WHEN h.inhparent = f.oid THEN h.inhrelid ELSE h.inhparent END
    FROM pg_inherits h JOIN family f ON f.oid IN (h.inhparent, h.inhrelid)
),
linked(oid) AS (
    SELECT oid FROM family
    UNION
    SELECT d.objid FROM pg_depend d
    WHERE d.refclassid = 'pg_class'::regclass
      AND d.refobjid = ANY (ARRAY(SELECT oid FROM family))
      AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    UNION
    SELECT d.refobjid FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = ANY (ARRAY(SELECT oid FROM family))
      AND d.objsubid = 0 AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
),
todo AS (%(todo)s)
"""

#: Marks a relation printed by a logged read, whose fingerprint was not computed.
UNKNOWN_FINGERPRINT = "?"


@functools.cache
def logged_query(server_version: int, exclude_tables: tuple[str, ...]) -> str:
    """The catalog query of a logged read: takes the relations (or indexes) the log names
    (``oid[]``) and the objects of relations it names (their catalogs and ids, ``oid[]``
    twice); returns the relations it prints and their rows, as one JSON document.

    It also returns the relations there are now (a safety net: the log names every relation
    made or dropped).  The sections that are not per relation are another statement
    (:func:`shared_query`), sent only when the log names such objects: in this one, even
    unread, they would cost a fifth of the read on a schema of a hundred relations."""
    start = PRELUDE.index("rel AS (\n") + len("rel AS (\n")
    rel = PRELUDE[start : PRELUDE.index("\n),\nreldesc", start)]
    assert rel.rstrip().endswith("c.oid)")
    todo = rel.rstrip() + "\n      AND c.oid = ANY (ARRAY(SELECT oid FROM linked))\n"
    # the relations there are now: rel's conditions, only their ids (rel's other columns
    # would cost half the list again), from the first id a user object can have
    where = rel[rel.index("    FROM pg_class c\n") :].rstrip()
    now = f"SELECT coalesce(json_agg(c.oid), '[]')\n{where}\n      AND c.oid >= %(first_user_oid)s"
    # no 'roles': a read follows the log only when no role can have changed since the last
    # (this session's changes to a role write a catalog that no logged command accounts
    # for; another session's end a transaction, or are not in this one's snapshot)
    keys = [
        "'server_version', current_setting('server_version_num')::int",
        "'printed', (SELECT coalesce(json_agg(oid), '[]') FROM todo)",
        f"'relations_now', ({now})",
    ]
    for name, sql in dict(FIRST_SECTIONS + SECOND_SECTIONS).items():
        if name in PER_RELATION_SECTIONS:
            keys.append(f"'{name}', ({fill(sql, server_version, own_rel='todo')})")
    assert PRELUDE.startswith("WITH\n")
    sql = (
        "WITH RECURSIVE\n"
        + PRELUDE[len("WITH\n") :]
        + _LOGGED.replace("%(todo)s", todo)
        + "\nSELECT json_build_object(\n"
        + ",\n".join(keys)
        + "\n)::text\n"
    )
    return fill(sql, server_version, exclude_tables=exclude_tables, row_version=True)


@functools.cache
def shared_query(server_version: int, exclude_tables: tuple[str, ...]) -> str:
    """The sections that are not per relation (schemas, types, functions, extensions), as one
    JSON document: a logged read sends it when the log names objects of theirs."""
    keys = [
        f"'{name}', ({fill(sql, server_version)})"
        for name, sql in FIRST_SECTIONS + SECOND_SECTIONS
        if name not in PER_RELATION_SECTIONS
    ]
    sql = PRELUDE + "\nSELECT json_build_object(\n" + ",\n".join(keys) + "\n)::text\n"
    return fill(sql, server_version, exclude_tables=exclude_tables)


# ------------------------------------------------------------------------------ the client


@dataclass(frozen=True, eq=False)
class Catalog:
    """What one read of the catalog returned: the rows of each per-relation section by
    relation, the other sections as they came, and (for an incremental read) each relation's
    fingerprint and the session it was read on."""

    rows: dict[str, dict[Any, list[Any]]]
    """Per-relation section -> relation oid (as the JSON rows give it) -> its rows, in the order
    the server gave them."""
    shared: dict[str, Any]
    """Every other section, the server version and (incremental reads) the settings."""
    fingerprints: dict[Any, str] | None = None
    session: Any = None
    """The driver connection an incremental read was made on (its rows are valid there)."""
    printed: int | None = None
    """How many relations the server printed (an incremental read)."""
    stamp: str | None = None
    """The quiet-catalog stamp of an incremental read (see :data:`_QUIET`)."""
    mark: str | None = None
    """The value an incremental read gave :data:`READ_MARK`."""
    logged: bool = False
    """The relations printed were those the DDL log named (:mod:`~.ddl_log`)."""

    @classmethod
    def of(cls, data: dict[str, Any]) -> Catalog:
        """A catalog from the data of a full read (both documents merged)."""
        rows: dict[str, dict[Any, list[Any]]] = {}
        shared = dict(data)
        for section in PER_RELATION_SECTIONS:
            rows[section] = _by_relation(shared.pop(section))
        return cls(rows, shared)

    def data(self) -> dict[str, Any]:
        """Every section as a full read returns it (rows in relation order)."""
        out = dict(self.shared)
        for section, by_relation in self.rows.items():
            # keys are oids as the server printed them (JSON strings): in numeric order
            out[section] = [row for oid in sorted(by_relation, key=int) for row in by_relation[oid]]
        return out

    def same(self, other: Catalog) -> bool:
        """Whether both reads show the same catalog rows (then their snapshots are equal).

        Rows are compared, not fingerprints: a downgrade that drops a column its upgrade added
        leaves the table's rows as they were but not its row versions.  Rows not printed again
        are the very lists of the earlier read, which compare at once."""
        return self.shared == other.shared and self.rows == other.rows


def _by_relation(rows: list[Any]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row[0]].append(row)
    return dict(grouped)


def _merge(
    result: dict[str, Any], base: Catalog | None, session: Any, stamp: str | None, mark: str
) -> Catalog:
    """The catalog a full read would give now: the rows of relations printed again from
    ``result``, the others from ``base``."""
    listed = result.pop("fingerprints")
    fingerprints = listed if isinstance(listed, dict) else dict(listed)
    stale = set(result.pop("stale"))
    rows: dict[str, dict[Any, list[Any]]] = {}
    for section in PER_RELATION_SECTIONS:
        fresh = _by_relation(result.pop(section))
        # base's rows of the relations that are still there and not printed again, then the
        # rows printed (set operations: a read costs what changed, not a loop in Python over
        # every relation of the schema)
        merged = dict(base.rows[section]) if base is not None else {}
        for oid in (merged.keys() - fingerprints.keys()) | (stale & merged.keys()):
            del merged[oid]
        for oid in stale & fresh.keys() & fingerprints.keys():
            merged[oid] = fresh[oid]
        rows[section] = merged
    return Catalog(rows, result, fingerprints, session, len(stale), stamp, mark)


#: Around the catalog query: ``search_path`` pinned (see :mod:`~.reading`), and its generic
#: plan used from the first run, so that a session that lost the prepared statement (psycopg
#: deallocates every statement after some ``DROP`` or ``ALTER``) plans it once, not six times.
#: ``jit`` is off (see :data:`~.reading.NO_JIT`).
_PIN_PATH = (
    "SELECT pg_catalog.set_config('search_path', 'pg_catalog', true), "
    f"pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true), {NO_JIT}"
)
#: :data:`_PIN_PATH` and :data:`_INDEXED_JOINS` in one statement (a logged read).
_PIN_INDEXED = _PIN_PATH + ", " + _INDEXED_JOINS.removeprefix("SELECT ")
#: ... and after it: the caller's settings back, this read's mark and a new DDL log.
#: Prepared (with the catalog query, under the pinned ``search_path``): planning the count of
#: catalog writes costs several times what running it does.  The count is ``$5``, the one
#: :data:`_CHECK` gave in the read's first round trip (nothing a read runs writes to a catalog,
#: and working it out again after the catalog query cost more than the rest of the
#: statement); NULL: work it out.
_RESTORE_PATH = (
    "SELECT pg_catalog.set_config('search_path', $1, true), "
    "pg_catalog.set_config('plan_cache_mode', $2, true), "
    f"pg_catalog.set_config('{READ_MARK}', $3, true), "
    f"pg_catalog.set_config('jit', $4, true), {reset_with('$5')}"
)
#: ... and the caller's :data:`_JOIN_SETTINGS` back (``$6`` to ``$8``), in the same statement.
_RESTORE_JOINS = _RESTORE_PATH + "".join(
    f", pg_catalog.set_config('{name}', ${number}, true)"
    for number, name in enumerate(_JOIN_SETTINGS, 6)
)


@functools.cache
def logged_and_restore(logged_sql: str) -> str:
    """The logged catalog query and :data:`_RESTORE_JOINS` in one statement (its parameters
    after the query's three), for a read on a psycopg session whose first round trip pinned
    the settings: executed through the protocol with its values as parameters, it costs the
    server less than an ``EXECUTE`` of each (see docs/performance.md, "At 0.8.1").  The
    query's row is made first (``OFFSET 0`` keeps it a subquery), the settings are restored
    after it."""
    restore = re.sub(r"\$(\d)", lambda m: f"${int(m.group(1)) + 3}", _RESTORE_JOINS)
    return f"SELECT main.j, {restore.removeprefix('SELECT ')} FROM ({logged_sql} OFFSET 0) main(j)"


#: The parameter types of :func:`logged_and_restore`.
_LOGGED_AND_RESTORE_TYPES = "oid[], oid[], oid[], " + ", ".join(["text"] * 8)

#: Numbers the marks of the reads this process makes.
_MARKS = itertools.count(1)


def read_incrementally(
    raw: psycopg.Connection[Any],
    exclude_tables: tuple[str, ...],
    base: Catalog | None,
    also: tuple[str, ...] = (),
) -> tuple[Catalog, Also | None]:
    """Read the catalog through ``raw`` (in its transaction), printing only the relations that
    changed since ``base`` (a catalog read on the same connection; None or another
    connection's: everything is printed).  Returns the catalog a full read would give, and the
    rows of each statement of ``also``, run in the first round trip (on the caller's
    ``search_path``).

    The first round trip asks whether anything can have changed since ``base`` (see
    :data:`_CHECK`, prepared when ``base`` was read: it runs in a savepoint, in case something
    deallocated it since); when nothing can, ``base``'s rows are the answer and that is all.
    Otherwise the second pins ``search_path``, prepares the catalog query if the session does
    not have it yet, runs it, restores ``search_path`` and sets this read's mark."""
    with contextlib.ExitStack() as cursors:
        batch = _Batch(raw, cursors)
        catalog, rows = _read(
            batch.run,
            raw,
            raw.info.server_version,
            exclude_tables,
            base,
            also,
            sync=batch.flush,  # a savepoint's statements go with the others: no round trip
            psycopg_session=True,
            run_prepared=batch.run_prepared,
        )
    if os.environ.get(CHECK_READS_ENV) == "1":
        check(raw, catalog, exclude_tables)
    return catalog, rows


def read_incrementally_sqlalchemy(
    conn: Any,
    exclude_tables: tuple[str, ...],
    base: Catalog | None,
    also: tuple[str, ...] = (),
) -> tuple[Catalog, Also | None]:
    """:func:`read_incrementally` through a SQLAlchemy connection on another driver (psycopg2,
    asyncpg, pg8000): the same statements, one round trip each.  ``base`` must have been read
    on the same driver connection."""
    run, server_version = _sqlalchemy_runner(conn), _server_version(conn)
    session = conn.connection.driver_connection
    catalog, rows = _read(run, session, server_version, exclude_tables, base, also)
    if os.environ.get(CHECK_READS_ENV) == "1":
        _check(run, server_version, catalog, exclude_tables)
    return catalog, rows


_ROWS = psycopg.pq.ExecStatus.TUPLES_OK


class _Batch:
    """Runs statements without parameters together, as one simple query (one message, one
    round trip, one cursor), when the first of their results is needed; a statement with
    parameters is sent on its own, after them.  Cheaper on the client than a pipeline, which
    takes a cursor and a protocol exchange of its own for each statement.  An error stops
    the statements after it, as in a pipeline; it is raised where a result is needed."""

    def __init__(self, raw: psycopg.Connection[Any], cursors: contextlib.ExitStack) -> None:
        self._raw = raw
        self._cursors = cursors
        self._pending: list[tuple[str, _Rows]] = []

    def run(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        if params is not None:
            self.flush()
            cur = self._cursors.enter_context(self._raw.cursor())
            return cur.execute(sql, params, prepare=False)
        rows = _Rows(self)
        self._pending.append((sql, rows))
        return rows

    def run_prepared(self, name: str, params: list[str | None]) -> _Rows:
        """Execute the prepared statement ``name`` with ``params`` (text; None: NULL) through
        the protocol, after the statements pending; its rows are the first value of its row."""
        self.flush()
        raw = self._raw
        encoding = raw.info.encoding
        values = [None if value is None else value.encode(encoding) for value in params]
        with raw.lock:
            raw.pgconn.send_query_prepared(name.encode(encoding), values)
            (result,) = raw.wait(psycopg.generators.execute(raw.pgconn))
        if result.status != _ROWS:
            raise psycopg.errors.error_from_result(result, encoding=encoding)
        value = result.get_value(0, 0) if result.ntuples else None
        rows = _Rows(self)
        rows.rows = [(None if value is None else value.decode(encoding),)]
        return rows

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        with self._raw.cursor() as cur:
            cur.execute(";\n".join(sql for sql, _ in pending))
            for _, rows in pending:
                # the result's status, not cur.description (which makes a Column per field)
                result = cur.pgresult
                rows.rows = cur.fetchall() if result is not None and result.status == _ROWS else []
                cur.nextset()


class _Rows:
    """The rows of one statement of a :class:`_Batch` (fetched when first asked for)."""

    def __init__(self, batch: _Batch) -> None:
        self._batch = batch
        self.rows: list[Any] | None = None

    def fetchall(self) -> list[Any]:
        if self.rows is None:
            self._batch.flush()
        if self.rows is None:  # pragma: no cover - flush fills every pending statement
            raise RuntimeError("statement not run")
        return self.rows

    def fetchone(self) -> Any:
        rows = self.fetchall()
        return rows[0] if rows else None


def _psycopg_runner(
    raw: psycopg.Connection[Any], cursors: contextlib.ExitStack
) -> Callable[..., Any]:
    """Runs one statement on a cursor of its own (in a pipeline, results come in order)."""

    def run(sql: str, params: dict[str, Any] | None = None) -> Any:
        cur = cursors.enter_context(raw.cursor())
        return cur.execute(sql, params, prepare=False)

    return run


def _sqlalchemy_runner(conn: Any) -> Callable[..., Any]:
    """Runs one statement through SQLAlchemy: as it is, or with its ``%(name)s`` parameters
    in each driver's own style (through ``text()``)."""
    import sqlalchemy

    def run(sql: str, params: dict[str, Any] | None = None) -> Any:
        if params is None:
            return execute_as_is(conn, sql)
        return conn.execute(sqlalchemy.text(re.sub(r"%\((\w+)\)s", r":\1", sql)), params)

    return run


def _server_version(conn: Any) -> int:
    """``server_version_num`` of a SQLAlchemy connection's server."""
    version = conn.dialect.server_version_info or (0, 0)
    return int(version[0]) * 10000 + (int(version[1]) if len(version) > 1 else 0)


def _read(
    run: Callable[..., Any],
    session: Any,
    server_version: int,
    exclude_tables: tuple[str, ...],
    base: Catalog | None,
    also: tuple[str, ...],
    *,
    use_log: bool = True,
    sync: Callable[[], None] | None = None,
    checked: bool = False,
    psycopg_session: bool = False,
    run_prepared: Callable[[str, list[str | None]], Any] | None = None,
) -> tuple[Catalog, Also | None]:
    """The statements of an incremental read, through ``run`` (which executes one statement
    and returns its cursor or result; results are fetched in order, so a :class:`_Batch` may
    send them together).  With ``use_log``, a complete DDL log (:mod:`~.ddl_log`) names the
    relations to print; without, or when it cannot, fingerprints do.

    :data:`_CHECK` is run straight away when this read just ran it (``checked``), or in the
    savepoint :data:`_GUARD` when ``base`` was read on the session and ``run`` sends its
    statements together (``sync`` sends those not yet sent: the savepoint's statements cost no
    round trip of their own).  Otherwise, or when the session no longer has it, a round trip
    first asks whether the session has it.  On a ``psycopg_session`` (``run`` sends
    statements as they are), the statement after the catalog query is prepared too; through
    SQLAlchemy it is sent with its values written in (no ``%`` in them is a placeholder: see
    :func:`~pytest_schemaguard.dbapi.execute_as_is`).

    With ``run_prepared`` (a psycopg session), the first round trip also pins the settings
    the catalog query runs under, and a logged read that reads nothing else runs
    :func:`logged_and_restore` through it: the second round trip is one statement."""
    if base is not None and (base.session is not session or base.fingerprints is None):
        base = None
    sql = incremental_query(server_version, exclude_tables)
    name = statement_name(sql)
    logged_sql = logged_query(server_version, exclude_tables)
    logged_name = statement_name(logged_sql)
    shared_sql = shared_query(server_version, exclude_tables)
    shared_name = statement_name(shared_sql)
    check_name = statement_name(_CHECK)
    restore_name = statement_name(_RESTORE_PATH)
    restore_joins_name = statement_name(_RESTORE_JOINS)
    combined_sql = logged_and_restore(logged_sql)
    combined_name = statement_name(combined_sql)
    names = (
        check_name,
        name,
        logged_name,
        shared_name,
        restore_name,
        restore_joins_name,
        combined_name,
    )
    # pinned in the first round trip (the statements after it run under it)
    pin = _PIN_INDEXED if run_prepared is not None else None
    call_check = f"EXECUTE {check_name}('{{{','.join(names)}}}'::pg_catalog.text[])"
    first: tuple[tuple[Any, ...], Also | None] | None = None
    if checked:
        first = _checked(run, call_check, also, after=pin)
    elif sync is not None and base is not None:
        first = _guarded(run, sync, call_check, also, after=pin)
    if first is None:
        (present,) = _one(run(_PRESENT, {"names": [check_name]}))
        if check_name not in present:
            run(f"PREPARE {check_name}(pg_catalog.text[]) AS {_CHECK}")
        first = _checked(run, call_check, also, after=pin)
    (settings, stamp, mark, *rest), rows = first
    *log, old_path, old_plans, old_jit = rest[: -len(_JOIN_SETTINGS) - 1]
    old_joins, present = rest[-len(_JOIN_SETTINGS) - 1 : -1], rest[-1]
    if base is not None and settings != base.shared.get("settings"):
        base = None  # values print differently now: print everything again
    if (
        base is not None
        and stamp is not None
        and stamp == base.stamp
        and mark is not None
        and mark == base.mark
    ):
        # nothing in the catalog can have changed since base was read
        if pin is not None:
            _one(run(_unpin(old_path, old_plans, old_jit, old_joins)))
        return Catalog(base.rows, base.shared, base.fingerprints, session, 0, stamp, mark), rows
    todo = _logged(base, stamp, mark, log) if use_log else None
    mark = f"{os.getpid()}.{next(_MARKS)}"
    others = None  # the sections that are not per relation, when a logged read reads them
    # the caller's join settings, when the statement that restores its search_path restores
    # them too (a logged read that reads nothing else: the others are planned as usual)
    joins_back: list[str] = []
    # the count of catalog writes the stamp begins with (None when it counts none)
    count = stamp.partition(" ")[0] if stamp is not None else None
    restored = False  # by the statement that ran the catalog query
    if todo is not None:
        oids, shared, parts = todo
        arrays = (
            "{" + ",".join(oids) + "}",
            "{" + ",".join(classid for classid, _ in parts) + "}",
            "{" + ",".join(objid for _, objid in parts) + "}",
        )
        if pin is None:
            run(_PIN_INDEXED)  # only (re)planning the logged query reads the join settings
        if run_prepared is not None and not shared:
            if combined_name not in present:
                run(f"PREPARE {combined_name}({_LOGGED_AND_RESTORE_TYPES}) AS {combined_sql}")
            main = run_prepared(
                combined_name,
                [*arrays, old_path, old_plans, mark, old_jit, count, *old_joins],
            )
            restored = True
        else:
            if logged_name not in present:
                run(f"PREPARE {logged_name}(oid[], oid[], oid[]) AS {logged_sql}")
            main = run(
                f"EXECUTE {logged_name}('{arrays[0]}'::oid[], '{arrays[1]}'::oid[], "
                f"'{arrays[2]}'::oid[])"
            )
        if shared:
            run(_joins_back(old_joins))
            if shared_name not in present:
                run(f"PREPARE {shared_name} AS {shared_sql}")
            others = run(f"EXECUTE {shared_name}")
        else:
            joins_back = list(old_joins)
    else:
        # planned, when it is, as usual: not under the join settings of a logged read
        run(_joins_back(old_joins) if pin is not None else _PIN_PATH)
        known: dict[Any, str] = (base.fingerprints or {}) if base is not None else {}
        if name not in present:
            run(f"PREPARE {name}(oid[], text[]) AS {sql}")
        main = run(
            f"EXECUTE {name}('{{{','.join(map(str, known))}}}'::oid[], "
            f"'{{{','.join(known.values())}}}'::text[])"
        )
    if not restored:
        values = [
            sql_literal(value) if value is not None else "NULL"
            for value in (old_path, old_plans, mark, old_jit, count, *joins_back)
        ]
        restore, restore_name = (
            (_RESTORE_JOINS, restore_joins_name) if joins_back else (_RESTORE_PATH, restore_name)
        )
        if not psycopg_session:  # its statements one by one: planning costs no round trip
            # in one pass: a value may hold "$2" itself
            run(re.sub(r"\$([1-8])", lambda m: values[int(m.group(1)) - 1], restore))
        else:
            if restore_name not in present:
                types = ", ".join("text" for _ in values)
                run(f"PREPARE {restore_name}({types}) AS {restore}")
            run(f"EXECUTE {restore_name}({', '.join(values)})")
    (text,) = _one(main)
    result = json.loads(text)
    if others is not None:
        result.update(json.loads(_one(others)[0]))
    result["settings"] = settings
    if todo is not None:
        assert base is not None
        logged = _merge_logged(result, base, session, stamp, mark, oids)
        if logged is None:
            # a relation the log names was renamed (what names it is printed again too), or
            # the relations there are now are not those the log accounts for
            return _read(
                run,
                session,
                server_version,
                exclude_tables,
                base,
                also,
                use_log=False,
                checked=True,
                sync=sync,
                psycopg_session=psycopg_session,
                run_prepared=run_prepared,
            )
        catalog = logged
    else:
        catalog = _merge(result, base, session, stamp, mark)
    if base is not None and catalog.shared["roles"] != base.shared.get("roles"):
        # policies print role names: print everything again
        return _read(
            run,
            session,
            server_version,
            exclude_tables,
            None,
            also,
            checked=True,
            sync=sync,
            psycopg_session=psycopg_session,
            run_prepared=run_prepared,
        )
    return catalog, rows


def _joins_back(old_joins: list[Any]) -> str:
    """The caller's :data:`_JOIN_SETTINGS` back."""
    return "SELECT " + ", ".join(
        f"pg_catalog.set_config('{name}', {sql_literal(value)}, true)"
        for name, value in zip(_JOIN_SETTINGS, old_joins, strict=True)
    )


def _unpin(old_path: str, old_plans: str, old_jit: str, old_joins: list[Any]) -> str:
    """Every setting the first round trip pinned back as the caller had it (a read that found
    nothing to read)."""
    return (
        f"{_joins_back(old_joins)}, "
        f"pg_catalog.set_config('search_path', {sql_literal(old_path)}, true), "
        f"pg_catalog.set_config('plan_cache_mode', {sql_literal(old_plans)}, true), "
        f"pg_catalog.set_config('jit', {sql_literal(old_jit)}, true)"
    )


def _checked(
    run: Callable[..., Any],
    call_check: str,
    also: tuple[str, ...],
    *,
    then: str | None = None,
    after: str | None = None,
) -> tuple[tuple[Any, ...], Also | None]:
    """The row of :data:`_CHECK` and those of ``also``, in one round trip (``then`` runs
    between them, ``after`` after them)."""
    second = run(call_check)
    if then is not None:
        run(then)
    extras = [run(statement) for statement in also]
    if after is not None:
        run(after)
    return _one(second), (_all(extras) if also else None)


def _guarded(
    run: Callable[..., Any],
    sync: Callable[[], None],
    call_check: str,
    also: tuple[str, ...],
    *,
    after: str | None = None,
) -> tuple[tuple[Any, ...], Also | None] | None:
    """:func:`_checked` in the savepoint :data:`_GUARD`, in the same round trip; None when the
    session no longer has :data:`_CHECK` (rolled back to the savepoint: the caller's
    transaction goes on as it was)."""
    try:
        run(f"SAVEPOINT {_GUARD}")
        return _checked(run, call_check, also, then=f"RELEASE SAVEPOINT {_GUARD}", after=after)
    except psycopg.errors.InvalidSqlStatementName:
        # Deallocated since the last read: by psycopg itself (after an ALTER or DROP, when it
        # had prepared statements of its own), or by a DEALLOCATE ALL in a migration.  What was
        # sent with the failed EXECUTE after it was not run.
        sync()
        run(f"ROLLBACK TO SAVEPOINT {_GUARD}")
        run(f"RELEASE SAVEPOINT {_GUARD}")
        return None


def _logged(
    base: Catalog | None, stamp: str | None, mark: str | None, log: list[str | None]
) -> tuple[list[str], bool, list[tuple[str, str]]] | None:
    """What the DDL log names, when it accounts for every change since ``base`` (else None):
    the relations (or indexes) to print, whether the sections that are not per relation must
    be read, and the objects of relations (catalog and object ids) whose relations to print.

    The log accounts for every change when the transaction is the one ``base`` was read in
    (its mark), the count of catalog writes is the one the last logged command left (nothing
    else wrote to the catalog), the log holds nothing it cannot vouch for, and, at
    ``READ COMMITTED``, no other transaction ended since (its changes would be visible, and
    its session kept its own log)."""
    end, flags, relations, indexes, commands = log
    if (
        base is None
        or base.fingerprints is None
        or base.stamp is None
        or stamp is None
        or mark is None
        or mark != base.mark
        or not end
    ):
        return None
    counter, _, rest = stamp.partition(" ")
    if counter != end or "U" in (flags or ""):
        return None
    if not rest.startswith("wal ") and rest != base.stamp.partition(" ")[2]:
        return None
    shared = "O" in (flags or "")
    # object ids as the JSON documents give them (strings)
    oids = set((relations or "").split())
    parts: list[tuple[str, str]] = []
    for command in (commands or "").split(","):
        if not command:
            continue
        classid, objid, created = command.split(" ")
        if classid == _PG_CLASS:
            oids.add(objid)
        elif classid in _RELATION_PARTS:
            parts.append((classid, objid))
            # a domain's constraint is the types section's
            shared = shared or classid == _PG_CONSTRAINT
        elif classid == _PG_TYPE and created == "1":
            parts.append((classid, objid))  # a composite type is a relation too
            shared = True
        elif created == "1":
            shared = True  # a type, function, schema... made or commented on
        else:
            return None  # changed (ALTER TYPE...): what names it is printed by fingerprints
    if indexes:
        tables = _index_tables(base)
        for schema, index in json.loads("[" + indexes.lstrip(",") + "]"):
            # an index that base does not know was made since: it is not there any more
            table = tables.get((schema, index))
            if table is not None:
                oids.add(table)
    oids |= _children(base, oids)
    return sorted(oids), shared, parts


#: ``pg_class`` and ``pg_type``, and the catalogs of the objects that belong to a relation:
#: defaults, constraints, triggers, policies, rules (their object ids, as the log gives them).
_PG_CLASS, _PG_TYPE, _PG_CONSTRAINT = "1259", "1247", "2606"
_RELATION_PARTS = frozenset({"2604", "2606", "2620", "3256", "2618"})


def _children(base: Catalog, oids: set[str]) -> set[str]:
    """The relations that were children (inheritance, partitions) of ``oids`` in ``base``:
    ``DETACH PARTITION`` names only the parent, and the catalog no longer links them."""
    relations = base.rows["relations"]
    names = {f"{rows[0][1]}.{rows[0][2]}" for oid, rows in relations.items() if oid in oids}
    if not names:
        return set()
    return {
        oid
        for oid, rows in relations.items()
        if rows[0][10] and any(parent in names for parent in rows[0][10])
    }


def _index_tables(base: Catalog) -> dict[tuple[str, str], Any]:
    """(schema, index name) -> the relation of each index ``base`` read."""
    relations = base.rows["relations"]
    tables: dict[tuple[str, str], Any] = {}
    for oid, rows in base.rows["indexes"].items():
        if oid in relations:
            schema = relations[oid][0][1]
            for row in rows:
                tables[(schema, row[1])] = oid
    return tables


def _merge_logged(
    result: dict[str, Any],
    base: Catalog,
    session: Any,
    stamp: str | None,
    mark: str,
    logged: list[str],
) -> Catalog | None:
    """:func:`_merge` for a logged read of the relations ``logged`` names: every relation of
    ``base`` the log does not name is as it was.  None when a printed relation or one of its
    columns has another name (what names it must be printed again, which only the
    fingerprints of every relation find), or when the relations there are now are not those
    of ``base`` and the log (a safety net: the log names every relation made or dropped)."""
    printed = result.pop("printed")
    now = result.pop("relations_now")
    if _renamed(base, result, printed):
        return None
    named, fresh = set(logged), set(printed)
    known = base.fingerprints or {}
    # a relation the log names and that is not printed is gone (or no longer in a snapshot)
    fingerprints = dict(known)
    for oid in named - fresh:
        fingerprints.pop(oid, None)
    if set(now) != fingerprints.keys() | fresh:
        return None  # a relation came or went that the log does not name: never expected
    for oid in printed:
        fingerprints[oid] = UNKNOWN_FINGERPRINT
    for section in base.shared.keys() - result.keys():
        result[section] = base.shared[section]  # not read again: as base read it
    result["fingerprints"] = fingerprints
    result["stale"] = printed
    catalog = _merge(result, base, session, stamp, mark)
    return dataclasses.replace(catalog, logged=True)


def _renamed(base: Catalog, result: dict[str, Any], printed: list[Any]) -> bool:
    """Whether a relation printed again has another schema or name than in ``base``, or a
    column of it (by number) another name: what other relations print of it.  (A column added
    or dropped changes nothing they print: one they used cannot be dropped without them.)"""
    named = {**_by_relation(result["sequences"]), **_by_relation(result["relations"])}
    columns = _by_relation(result["columns"])
    old_relations, old_sequences = base.rows["relations"], base.rows["sequences"]
    old_columns = base.rows["columns"]
    for oid in printed:
        # (schema, name) of a table, view or sequence
        old, new = old_relations.get(oid) or old_sequences.get(oid), named.get(oid)
        if old and new and old[0][1:3] != new[0][1:3]:
            return True
        names = {row[1]: row[2] for row in old_columns.get(oid, ())}
        for row in columns.get(oid, ()):
            if names.get(row[1], row[2]) != row[2]:
                return True
    return False


def check(raw: psycopg.Connection[Any], catalog: Catalog, exclude_tables: tuple[str, ...]) -> None:
    """Compare ``catalog`` with a full read of the same catalog; raise when they differ."""
    with contextlib.ExitStack() as cursors:
        _check(_psycopg_runner(raw, cursors), raw.info.server_version, catalog, exclude_tables)


def _check(
    run: Callable[..., Any],
    server_version: int,
    catalog: Catalog,
    exclude_tables: tuple[str, ...],
) -> None:
    first, second = query(server_version, False, None, exclude_tables)
    old_path, old_jit = _one(run("SELECT current_setting('search_path'), current_setting('jit')"))
    run(f"SELECT set_config('search_path', 'pg_catalog', true), {NO_JIT}")
    full = json.loads(_one(run(first))[0])
    full.update(json.loads(_one(run(second))[0]))
    run(
        "SELECT set_config('search_path', %(path)s, true), set_config('jit', %(jit)s, true)",
        {"path": old_path, "jit": old_jit},
    )
    mine = catalog.data()
    mine.pop("settings", None)
    mine.pop("roles", None)
    if mine != full:
        wrong = sorted(k for k in full.keys() | mine.keys() if full.get(k) != mine.get(k))
        raise AssertionError(f"incremental catalog read differs from a full read in: {wrong}")


def _all(cursors: list[Any]) -> Also:
    return tuple(row_tuples(cur.fetchall()) for cur in cursors)


def _one(cur: Any) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:  # pragma: no cover - every statement here returns a row
        raise RuntimeError("statement returned no row")
    return tuple(row)
