"""Reading the catalog again: only the relations whose catalog rows changed are printed.

Between two migration steps most of a schema stays as it was, yet a full read prints every
column default, constraint and index definition again, and that printing is most of its cost.
An incremental read asks the server for a *fingerprint* of each relation and prints only the
relations whose fingerprint is not the one the previous read on the same session saw; the rows
of the others are taken from that read.

A relation's fingerprint covers every catalog row its printed rows come from: its ``pg_class``
row and schema name, its columns, defaults, constraints, indexes (and their ``pg_class`` rows),
triggers, policies, rewrite rules, sequence parameters, inheritance and partitioning rows, its
own dependency rows (an owned sequence's column, a parent), and the comments on all of them.
A row is identified by its version (``xmin``, ``cmin``, ``ctid``): an ``UPDATE`` gives a row
another version and an inserted or deleted row changes the set (after a rollback to a
savepoint the rows are again the very versions read before it).  The flags of ``pg_index``
that ``CREATE INDEX CONCURRENTLY`` may set in place are read as values.

What a relation prints of *other* objects is their names: a column's type, a default's
sequence or function, a foreign key's referenced table and columns, a view's tables, an
inherited parent, an owned sequence's column.  PostgreSQL records each such reference in
``pg_depend``.  References to types, functions, collations, operators... are part of the
fingerprint as their descriptions (``pg_describe_object``), so renaming one changes it; a
relation that references another relation of the snapshot is printed again whenever that one's
schema, name or column names changed.  The session's settings that change how values
print (``DateStyle``, ``TimeZone``...) and the role names policies print are read each time:
when they differ from the previous read's, everything is printed again.

Nothing here is trusted blindly: with ``SCHEMAGUARD_CHECK_READS=1`` in the environment, every
incremental read is compared with a full read of the same catalog, and a difference raises.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg

from pytest_schemaguard.snapshot.introspect.queries import (
    FIRST_SECTIONS,
    PER_RELATION_SECTIONS,
    PRELUDE,
    SECOND_SECTIONS,
    fill,
    query,
)
from pytest_schemaguard.snapshot.introspect.reading import statement_name

__all__ = ["CHECK_READS_ENV", "Catalog", "check", "read_incrementally"]

#: Set to ``1`` to compare every incremental read with a full read (slow; for tests).
CHECK_READS_ENV = "SCHEMAGUARD_CHECK_READS"

#: Fingerprints and the relations to print again.  ``objects`` maps every object that belongs
#: to a relation of the snapshot (the relation, its indexes, defaults, constraints, triggers,
#: policies and rules) to it, by (catalog, object id).
_FINGERPRINTS = r""",
objects AS (
    SELECT 'pg_class'::regclass::oid AS classid, rel.oid AS objid, rel.oid AS rel FROM rel
    UNION ALL
    SELECT 'pg_class'::regclass::oid, i.indexrelid, i.indrelid
    FROM pg_index i JOIN rel ON rel.oid = i.indrelid
    UNION ALL
    SELECT 'pg_attrdef'::regclass::oid, ad.oid, ad.adrelid
    FROM pg_attrdef ad JOIN rel ON rel.oid = ad.adrelid
    UNION ALL
    SELECT 'pg_constraint'::regclass::oid, con.oid, con.conrelid
    FROM pg_constraint con JOIN rel ON rel.oid = con.conrelid
    UNION ALL
    SELECT 'pg_trigger'::regclass::oid, tg.oid, tg.tgrelid
    FROM pg_trigger tg JOIN rel ON rel.oid = tg.tgrelid
    WHERE NOT tg.tgisinternal
    UNION ALL
    SELECT 'pg_policy'::regclass::oid, p.oid, p.polrelid
    FROM pg_policy p JOIN rel ON rel.oid = p.polrelid
    UNION ALL
    SELECT 'pg_rewrite'::regclass::oid, r.oid, r.ev_class
    FROM pg_rewrite r JOIN rel ON rel.oid = r.ev_class
),
versions(rel, v) AS (
%(versions)s
),
names AS MATERIALIZED (
    -- what other relations print of it: its schema, name and column names
    SELECT rel.oid AS rel, md5(rel.nspname || '.' || rel.relname || ':' || coalesce((
        SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_attribute a
        WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped), '')) AS names
    FROM rel
),
fingerprints AS (
    SELECT v.rel, v.versions || '/' || n.names AS fp
    FROM (SELECT rel, count(*) || ':' || sum(hashtextextended(v, 0)) AS versions
          FROM versions GROUP BY rel) v
    JOIN names n ON n.rel = v.rel
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
),
todo AS (SELECT rel.* FROM rel WHERE rel.oid IN (SELECT rel FROM stale))
"""


def _version(alias: str, *values: str) -> str:
    """A catalog row's version as text: ``values``, then the row's ``xmin``, ``cmin`` and
    ``ctid``."""
    return " || ' ' || ".join(f"{v}::text" for v in (*values, *_header(alias)))


def _header(alias: str) -> tuple[str, str, str]:
    return (f"{alias}.xmin", f"{alias}.cmin", f"{alias}.ctid")


#: The rows a relation's fingerprint covers, as (relation, version, FROM ... [WHERE ...]).
_VERSIONED: tuple[tuple[str, str, str], ...] = (
    ("rel.oid", _version("c", "rel.nspname"), "rel JOIN pg_class c ON c.oid = rel.oid"),
    (
        "a.attrelid",
        _version("a", "'a'", "a.attnum"),
        "pg_attribute a JOIN rel ON rel.oid = a.attrelid WHERE a.attnum > 0",
    ),
    (
        "ad.adrelid",
        _version("ad", "'d'", "ad.oid"),
        "pg_attrdef ad JOIN rel ON rel.oid = ad.adrelid",
    ),
    (
        "con.conrelid",
        _version("con", "'k'", "con.oid"),
        "pg_constraint con JOIN rel ON rel.oid = con.conrelid",
    ),
    (
        "i.indrelid",
        # CREATE INDEX CONCURRENTLY may set these flags in place: read as values
        _version("i", "'i'", "i.indexrelid", "i.indisvalid", "i.indisready", "i.indislive")
        + " || ' ' || "
        + _version("ic"),
        "pg_index i JOIN rel ON rel.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid",
    ),
    (
        "tg.tgrelid",
        _version("tg", "'t'", "tg.oid"),
        "pg_trigger tg JOIN rel ON rel.oid = tg.tgrelid WHERE NOT tg.tgisinternal",
    ),
    ("p.polrelid", _version("p", "'p'", "p.oid"), "pg_policy p JOIN rel ON rel.oid = p.polrelid"),
    ("r.ev_class", _version("r", "'r'", "r.oid"), "pg_rewrite r JOIN rel ON rel.oid = r.ev_class"),
    ("s.seqrelid", _version("s", "'s'"), "pg_sequence s JOIN rel ON rel.oid = s.seqrelid"),
    (
        "h.inhrelid",
        _version("h", "'h'", "h.inhparent", "h.inhseqno"),
        "pg_inherits h JOIN rel ON rel.oid = h.inhrelid",
    ),
    (
        "pt.partrelid",
        _version("pt", "'q'"),
        "pg_partitioned_table pt JOIN rel ON rel.oid = pt.partrelid",
    ),
    (
        # what it depends on by itself (a sequence's owning column, an inherited parent)
        "d.objid",
        _version("d", "'o'", "d.refclassid", "d.refobjid", "d.refobjsubid", "d.deptype"),
        "pg_depend d JOIN rel ON d.classid = 'pg_class'::regclass AND d.objid = rel.oid "
        "AND d.objsubid = 0",
    ),
    (
        "o.rel",
        _version("d", "'c'", "d.classoid", "d.objoid", "d.objsubid"),
        "pg_description d JOIN objects o ON o.classid = d.classoid AND o.objid = d.objoid "
        "WHERE d.objoid >= %(first_user_oid)s",
    ),
    (
        # what the relation names of objects outside it (types, functions, collations...)
        "o.rel",
        "'n ' || d.refclassid::text || ' ' || d.refobjid::text || ' ' || d.refobjsubid::text "
        "|| ' ' || coalesce(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), '?')",
        "pg_depend d JOIN objects o ON o.classid = d.classid AND o.objid = d.objid "
        "WHERE d.objid >= %(first_user_oid)s AND d.refclassid <> 'pg_namespace'::regclass "
        "AND NOT (d.refclassid = 'pg_class'::regclass AND EXISTS ("
        "SELECT 1 FROM objects x WHERE x.classid = 'pg_class'::regclass AND x.objid = d.refobjid))",
    ),
)

_VERSIONS = "\n    UNION ALL\n".join(
    f"    SELECT {rel}, {version}\n    FROM {source}" for rel, version, source in _VERSIONED
)


#: What else a relation's rows depend on: settings that change how values print, and the role
#: names policies print.
_SETTINGS = r"""json_build_array(
        current_setting('DateStyle'), current_setting('IntervalStyle'),
        current_setting('TimeZone'), current_setting('extra_float_digits'),
        current_setting('bytea_output'), current_setting('lc_monetary'),
        current_setting('standard_conforming_strings'), current_setting('quote_all_identifiers'),
        (SELECT md5(string_agg(r.oid || ' ' || r.rolname, ',' ORDER BY r.oid)) FROM pg_roles r))"""


@functools.cache
def incremental_query(server_version: int, exclude_tables: tuple[str, ...]) -> str:
    """The incremental catalog query: takes the known relations and their fingerprints
    (``oid[]``, ``text[]``), returns every fingerprint, the relations printed again and their
    rows, and every section that is not per relation, as one JSON document."""
    sections = dict(FIRST_SECTIONS + SECOND_SECTIONS)
    keys = [
        "'server_version', current_setting('server_version_num')::int",
        f"'settings', {_SETTINGS}",
        "'fingerprints', (SELECT coalesce(json_agg(json_build_array(rel, fp)), '[]') "
        "FROM fingerprints)",
        "'stale', (SELECT coalesce(json_agg(rel), '[]') FROM stale)",
    ]
    for name, sql in sections.items():
        own = "todo" if name in PER_RELATION_SECTIONS else "rel"
        keys.append(f"'{name}', ({fill(sql, server_version, own_rel=own)})")
    body = "\nSELECT json_build_object(\n" + ",\n".join(keys) + "\n)::text\n"
    sql = PRELUDE + _FINGERPRINTS.replace("%(versions)s", _VERSIONS) + body
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


def _merge(result: dict[str, Any], base: Catalog | None, session: Any) -> Catalog:
    """The catalog a full read would give now: the rows of relations printed again from
    ``result``, the others from ``base``."""
    fingerprints = {oid: fp for oid, fp in result.pop("fingerprints")}
    stale = set(result.pop("stale"))
    rows: dict[str, dict[Any, list[Any]]] = {}
    for section in PER_RELATION_SECTIONS:
        fresh = _by_relation(result.pop(section))
        old = base.rows[section] if base is not None else {}
        merged: dict[Any, list[Any]] = {}
        for oid in fingerprints:
            if oid in stale:
                if oid in fresh:
                    merged[oid] = fresh[oid]
            elif oid in old:
                merged[oid] = old[oid]
        rows[section] = merged
    return Catalog(rows, result, fingerprints, session, len(stale))


_PIN_PATH = (
    "SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog', true), "
    "ARRAY(SELECT name::text FROM pg_catalog.pg_prepared_statements WHERE name = %(name)s)"
)
_RESTORE_PATH = "SELECT set_config('search_path', %(path)s, true)"


def read_incrementally(
    raw: psycopg.Connection[Any],
    exclude_tables: tuple[str, ...],
    base: Catalog | None,
    also: str | None = None,
) -> tuple[Catalog, tuple[Any, ...] | None]:
    """Read the catalog through ``raw`` (in its transaction), printing only the relations that
    changed since ``base`` (a catalog read on the same connection; None or another
    connection's: everything is printed).  Returns the catalog a full read would give, and the
    row of the statement ``also`` run after it in the same round trip."""
    if base is not None and (base.session is not raw or base.fingerprints is None):
        base = None
    sql = incremental_query(raw.info.server_version, exclude_tables)
    name = statement_name(sql)
    known: dict[Any, str] = (base.fingerprints or {}) if base is not None else {}
    execute = (
        f"EXECUTE {name}('{{{','.join(map(str, known))}}}'::oid[], "
        f"'{{{','.join(known.values())}}}'::text[])"
    )
    row: tuple[Any, ...] | None = None
    with contextlib.ExitStack() as stack:
        pin, main, restore, extra = (stack.enter_context(raw.cursor()) for _ in range(4))
        pipeline: contextlib.AbstractContextManager[Any] = (
            raw.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext()
        )
        with pipeline:
            old_path, _, present = _one(pin.execute(_PIN_PATH, {"name": name}, prepare=False))
            if name not in present:
                pin.execute(f"PREPARE {name}(oid[], text[]) AS {sql}", prepare=False)
            main.execute(execute, prepare=False)
            restore.execute(_RESTORE_PATH, {"path": old_path}, prepare=False)
            if also is not None:
                extra.execute(also, prepare=False)
        (text,) = _one(main)
        if also is not None:
            row = _one(extra)
    result = json.loads(text)
    if base is not None and result["settings"] != base.shared.get("settings"):
        # values print differently now: print everything again
        catalog, _ = read_incrementally(raw, exclude_tables, None)
    else:
        catalog = _merge(result, base, raw)
    if os.environ.get(CHECK_READS_ENV) == "1":
        check(raw, catalog, exclude_tables)
    return catalog, row


def check(raw: psycopg.Connection[Any], catalog: Catalog, exclude_tables: tuple[str, ...]) -> None:
    """Compare ``catalog`` with a full read of the same catalog; raise when they differ."""
    first, second = query(raw.info.server_version, False, None, exclude_tables)
    with raw.cursor() as cur:
        (old_path,) = _one(cur.execute("SELECT current_setting('search_path')"))
        cur.execute("SELECT set_config('search_path', 'pg_catalog', true)")
        full = json.loads(_one(cur.execute(first))[0])
        full.update(json.loads(_one(cur.execute(second))[0]))
        cur.execute("SELECT set_config('search_path', %(path)s, true)", {"path": old_path})
    mine = catalog.data()
    mine.pop("settings", None)
    if mine != full:
        wrong = sorted(k for k in full.keys() | mine.keys() if full.get(k) != mine.get(k))
        raise AssertionError(f"incremental catalog read differs from a full read in: {wrong}")


def _one(cur: Any) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:  # pragma: no cover - every statement here returns a row
        raise RuntimeError("statement returned no row")
    return tuple(row)
