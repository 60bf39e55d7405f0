"""Reading one JSON value on the DBAPI connection under a SQLAlchemy connection.

The checks that watch a migration (the safety observer, the foreign-key origins of
``fk_types``) read the catalog between statements.  They go to the DBAPI connection directly,
so that no SQLAlchemy event fires for their own statements and every driver (psycopg,
psycopg2, asyncpg's adapter, pg8000) is asked the same way: one statement, no parameters, one
text value.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["read_json"]


def read_json(conn: Connection, sql: str) -> Any:
    """Run ``sql`` (one text value, no parameters) on the DBAPI connection under ``conn`` and
    parse it; None when it returns no row."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return json.loads(row[0]) if row is not None else None
