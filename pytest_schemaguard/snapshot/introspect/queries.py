"""The two catalog queries, put together from the sections each object family contributes.

Each section is one subquery that aggregates every object of a family into a JSON array; the
sections live beside the code that turns their rows into model objects.  A whole snapshot is
still two queries, never a query per object: the first reads sequences, columns and
constraints, the second relations, indexes and everything else.
"""

from __future__ import annotations

import functools

from pytest_schemaguard.snapshot.introspect.access import COLUMN_GRANTS, POLICIES, RELATION_GRANTS
from pytest_schemaguard.snapshot.introspect.constraints import CONSTRAINTS
from pytest_schemaguard.snapshot.introspect.indexes import INDEXES
from pytest_schemaguard.snapshot.introspect.routines import FUNCTIONS, TRIGGERS
from pytest_schemaguard.snapshot.introspect.schemas import EXTENSIONS, SCHEMAS
from pytest_schemaguard.snapshot.introspect.tables import COLUMNS, RELATIONS
from pytest_schemaguard.snapshot.introspect.types import SEQUENCES, TYPES

__all__ = [
    "DEFAULT_EXCLUDED_TABLES",
    "FIRST_SECTIONS",
    "PER_RELATION_SECTIONS",
    "PRELUDE",
    "SECOND_SECTIONS",
    "fill",
    "query",
]

#: Tables left out unless asked for (matched by name in every schema).
DEFAULT_EXCLUDED_TABLES: tuple[str, ...] = ("alembic_version",)

#: PostgreSQL's ``FirstNormalObjectId``: every object created after ``initdb`` (every object a
#: snapshot reads but the ``public`` schema, whose comment is read by its own id) has an id at
#: least this large.  Scans of ``pg_description``, ``pg_proc`` and ``pg_type`` start there, so
#: they skip the thousands of rows of the system's own objects (about a tenth of a snapshot's
#: time on a small schema).
FIRST_USER_OID = 16384

#: Common table expressions of both catalog queries: the schemas, relations and descriptions that
#: a snapshot covers.
PRELUDE = r"""WITH
ext AS (
    SELECT d.classid, d.objid
    FROM pg_extension e
    JOIN pg_depend d ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
    WHERE d.deptype = 'e'
),
ns AS (
    SELECT n.oid, n.nspname
    FROM pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND left(n.nspname, 8) <> 'pg_toast'
      AND left(n.nspname, 7) <> 'pg_temp'
      AND %(schema_filter)s
      AND NOT EXISTS (
          SELECT 1 FROM ext
          WHERE ext.classid = 'pg_namespace'::regclass AND ext.objid = n.oid)
),
rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relpersistence, c.relrowsecurity,
           c.relforcerowsecurity, c.reloptions, c.relispartition, c.relowner, c.relacl,
           c.relpartbound, ns.nspname%(row_version)s
    FROM pg_class c
    JOIN ns ON ns.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'c')
      AND NOT (c.relkind IN ('r', 'p') AND c.relname = ANY (%(exclude_tables)s))
      AND NOT EXISTS (
          SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
),
reldesc AS (
    SELECT d.objoid, d.objsubid, d.description
    FROM pg_description d
    WHERE d.classoid = 'pg_class'::regclass AND d.objoid >= %(first_user_oid)s
)
"""

#: The sections whose rows each belong to one relation (its oid is the first value of the row):
#: they read their relations from ``%(own_rel)s``, every relation of the snapshot in a full read,
#: only those to print again in an incremental one (:mod:`~.delta`), and their rows come ordered
#: by relation first, so that a relation's rows are always one run, in the same order.
PER_RELATION_SECTIONS = (
    "sequences",
    "columns",
    "constraints",
    "relations",
    "indexes",
    "triggers",
    "policies",
)

#: The first catalog query: everything that the rows of the second one refer to by attribute
#: number (columns) or that is built first (sequences carry identity options for columns).
FIRST_SECTIONS: tuple[tuple[str, str], ...] = (
    ("schemas", SCHEMAS),
    ("sequences", SEQUENCES),
    ("columns", COLUMNS),
    ("constraints", CONSTRAINTS),
)

#: The second catalog query: relations and everything attached to them, types, functions,
#: extensions.  It is sent before the result of the first one is processed, so that the server
#: computes it while the client builds the objects of the first.
SECOND_SECTIONS: tuple[tuple[str, str], ...] = (
    ("relations", RELATIONS),
    ("indexes", INDEXES),
    ("triggers", TRIGGERS),
    ("policies", POLICIES),
    ("types", TYPES),
    ("functions", FUNCTIONS),
    ("extensions", EXTENSIONS),
)


def _document(sections: tuple[tuple[str, str], ...], *, server_version: bool = False) -> str:
    """One query returning ``{section: [rows...]}`` as JSON text."""
    keys = (
        ["'server_version', current_setting('server_version_num')::int"] if server_version else []
    )
    keys += [f"'{name}', ({sql})" for name, sql in sections]
    return "\nSELECT json_build_object(\n" + ",\n".join(keys) + "\n)::text\n"


_FIRST_QUERY = _document(FIRST_SECTIONS, server_version=True)
_SECOND_QUERY = _document(SECOND_SECTIONS)


def _text_array(values: tuple[str, ...]) -> str:
    """A ``text[]`` literal.  Written into the SQL (not sent as parameters) so that the prepared
    statement is planned once with the real values; E'' escapes work whatever the server's
    ``standard_conforming_strings``."""
    items = ", ".join("E'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
    return f"ARRAY[{items}]::text[]"


def fill(
    sql: str,
    server_version: int,
    *,
    include_grants: bool = False,
    schemas: tuple[str, ...] | None = None,
    exclude_tables: tuple[str, ...] = DEFAULT_EXCLUDED_TABLES,
    own_rel: str = "rel",
    row_version: bool = False,
) -> str:
    """``sql`` (the prelude, sections...) with its placeholders filled in.  With
    ``row_version``, the ``rel`` CTE also carries the version of each relation's ``pg_class``
    row (``row_xmin``, ``row_cmin``, ``row_ctid``), which incremental reads fingerprint."""
    parts = {
        "schema_filter": (
            "true" if schemas is None else f"n.nspname = ANY ({_text_array(schemas)})"
        ),
        "exclude_tables": _text_array(exclude_tables),
        "relation_grants": RELATION_GRANTS if include_grants else "",
        "column_grants": COLUMN_GRANTS if include_grants else "",
        "nulls_not_distinct": "i.indnullsnotdistinct" if server_version >= 150000 else "false",
        "first_user_oid": str(FIRST_USER_OID),
        "own_rel": own_rel,
        # the version of each relation's pg_class row, for incremental reads (see delta)
        "row_version": (
            ", c.xmin AS row_xmin, c.cmin AS row_cmin, c.ctid AS row_ctid" if row_version else ""
        ),
    }
    for key, value in parts.items():
        sql = sql.replace(f"%({key})s", value)
    return sql


@functools.cache
def query(
    server_version: int,
    include_grants: bool,
    schemas: tuple[str, ...] | None = None,
    exclude_tables: tuple[str, ...] = DEFAULT_EXCLUDED_TABLES,
) -> tuple[str, str]:
    """The two catalog queries for a server version (the SQL differs slightly between
    majors)."""
    first, second = (
        fill(
            PRELUDE + body,
            server_version,
            include_grants=include_grants,
            schemas=schemas,
            exclude_tables=exclude_tables,
        )
        for body in (_FIRST_QUERY, _SECOND_QUERY)
    )
    return first, second
