"""A log of the DDL a session runs, kept by event triggers, so that a read knows which relations
changed without computing the fingerprint of every relation (see :mod:`~.delta`).

Three event triggers, whose functions live in the session's temporary schema (so nothing of
them is ever part of a snapshot or of a dump, and they go away with the session), note what
each DDL command of the transaction touched, in transaction-local settings:

- ``ddl_command_end``: the catalog and id of each object the command created or altered
  (the reader finds their relations: a table, the table of an index, constraint, default,
  trigger, policy or rule, a composite type's); a command that names no object (``GRANT``)
  makes the log *incomplete*;
- ``sql_drop``: the relation each dropped object belonged to (its table's name is resolved at
  once; a dropped index is named, and the reader finds its table in the previous read);
- ``ddl_command_start``: that no catalog row was written since the previous command ended
  (asked only when the server's WAL moved since).

That last check is what makes the log trustworthy: each read and each logged command record
this transaction's count of catalog writes (:data:`COUNTER`).  Any write that no logged
command accounts for (direct ``UPDATE`` of a catalog, a command that fires no event trigger
such as ``TRUNCATE`` or ``REINDEX``, DDL while event triggers do not fire) shows as a count
that moved between two commands, or between the last command and the read: the log is then
incomplete and the read computes fingerprints as without it.  A rollback to a savepoint
restores the settings but not the count, so it too makes the log incomplete.

Only a superuser can install the triggers; the migration runner installs them on its scratch
database during a pass, from its first read that another read follows (see :class:`PassLog`;
:func:`install` and :func:`remove`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pytest_schemaguard.dbapi import execute_as_is

__all__ = [
    "COUNTED_CATALOGS",
    "COUNTER",
    "LOG_SETTINGS",
    "RESET",
    "PassLog",
    "install",
    "remove",
]

#: The catalogs whose rows a read prints, or that what it prints names (every catalog but
#: statistics, large objects and replication state), with their object ids (fixed in
#: PostgreSQL's sources, the same in every version).
COUNTED_CATALOGS: dict[str, int] = {
    "pg_aggregate": 2600,
    "pg_am": 2601,
    "pg_amop": 2602,
    "pg_amproc": 2603,
    "pg_attrdef": 2604,
    "pg_attribute": 1249,
    "pg_auth_members": 1261,
    "pg_authid": 1260,
    "pg_cast": 2605,
    "pg_class": 1259,
    "pg_collation": 3456,
    "pg_constraint": 2606,
    "pg_conversion": 2607,
    "pg_database": 1262,
    "pg_db_role_setting": 2964,
    "pg_default_acl": 826,
    "pg_depend": 2608,
    "pg_description": 2609,
    "pg_enum": 3501,
    "pg_event_trigger": 3466,
    "pg_extension": 3079,
    "pg_foreign_data_wrapper": 2328,
    "pg_foreign_server": 1417,
    "pg_foreign_table": 3118,
    "pg_index": 2610,
    "pg_inherits": 2611,
    "pg_init_privs": 3394,
    "pg_language": 2612,
    "pg_largeobject_metadata": 2995,
    "pg_namespace": 2615,
    "pg_opclass": 2616,
    "pg_operator": 2617,
    "pg_opfamily": 2753,
    "pg_partitioned_table": 3350,
    "pg_policy": 3256,
    "pg_proc": 1255,
    "pg_publication": 6104,
    "pg_publication_rel": 6106,
    "pg_range": 3541,
    "pg_rewrite": 2618,
    "pg_seclabel": 3596,
    "pg_sequence": 2224,
    "pg_shdepend": 1214,
    "pg_shdescription": 2396,
    "pg_shseclabel": 3592,
    "pg_statistic_ext": 3381,
    "pg_subscription": 6100,
    "pg_tablespace": 1213,
    "pg_transform": 3576,
    "pg_trigger": 2620,
    "pg_ts_config": 3602,
    "pg_ts_config_map": 3603,
    "pg_ts_dict": 3600,
    "pg_ts_parser": 3601,
    "pg_ts_template": 3764,
    "pg_type": 1247,
    "pg_user_mapping": 1418,
}

#: This session's count of the rows it inserted, updated and deleted in the catalogs during the
#: transaction (its statistics, which also count the writes of a subtransaction rolled back
#: since); NULL when it counts none (``track_counts`` off).
COUNTER = (
    "(SELECT CASE WHEN pg_catalog.current_setting('track_counts') = 'on' THEN pg_catalog.sum("
    "pg_catalog.pg_stat_get_xact_tuples_inserted(c) + pg_catalog.pg_stat_get_xact_tuples_updated(c)"
    " + pg_catalog.pg_stat_get_xact_tuples_deleted(c)) END FROM pg_catalog.unnest(ARRAY["
    + ", ".join(map(str, COUNTED_CATALOGS.values()))
    + "]::pg_catalog.oid[]) c)"
)

#: The settings the log is kept in: the count at the end of the last logged command (or at
#: the last read) and the server's WAL position then, what the log cannot vouch for (``U``:
#: incomplete; ``O``: objects that are not relations were created, changed or dropped), the
#: relations dropped objects belonged to (object ids, space separated), the dropped indexes
#: (``["schema", "name"]``, comma separated), and what each command created or altered
#: (``classid objid created``, comma separated: the reader finds their relations).
END, LSN, FLAGS, RELATIONS, INDEXES, COMMANDS = (
    "schemaguard.ddl_end",
    "schemaguard.ddl_lsn",
    "schemaguard.ddl_flags",
    "schemaguard.ddl_relations",
    "schemaguard.ddl_indexes",
    "schemaguard.ddl_commands",
)
LOG_SETTINGS = (END, FLAGS, RELATIONS, INDEXES, COMMANDS)

#: The server's WAL position ('' on a standby, where there is none to ask for).
_WAL = (
    "(CASE WHEN pg_catalog.pg_is_in_recovery() THEN '' "
    "ELSE pg_catalog.pg_current_wal_insert_lsn()::pg_catalog.text END)"
)


def reset_with(count: str) -> str:
    """The expressions a read resets the log with (a new log starts at the read), given the
    count of catalog writes as the SQL ``text`` expression ``count`` (:data:`COUNTER` is
    worked out where it is NULL)."""
    return (
        f"pg_catalog.set_config('{END}', coalesce({count}, {COUNTER}::pg_catalog.text), true), "
        f"pg_catalog.set_config('{LSN}', {_WAL}, true), "
        + ", ".join(
            f"pg_catalog.set_config('{name}', '', true)"
            for name in (FLAGS, RELATIONS, INDEXES, COMMANDS)
        )
    )


#: :func:`reset_with` the count worked out.
RESET = reset_with("NULL")


def _setting(name: str) -> str:
    return f"coalesce(pg_catalog.current_setting('{name}', true), '')"


def _append(name: str, value: str) -> str:
    return f"pg_catalog.set_config('{name}', {_setting(name)} || {value}, true)"


_INCOMPLETE = f"PERFORM pg_catalog.set_config('{FLAGS}', 'U', true);"

#: ``ddl_command_start``: a catalog write since the last logged command makes the log
#: incomplete.  When nothing at all was written on the server since (its WAL position), the
#: count need not be asked for.
_START = f"""
BEGIN
    IF pg_catalog.current_setting('{LSN}', true) IS DISTINCT FROM {_WAL} THEN
        IF pg_catalog.current_setting('{END}', true)
           IS DISTINCT FROM {COUNTER}::pg_catalog.text THEN
            {_INCOMPLETE}
        END IF;
    END IF;
EXCEPTION WHEN OTHERS THEN
    {_INCOMPLETE}
END"""

#: ``ddl_command_end``: what the command created or altered (the reader finds the relations).
_END = f"""
DECLARE
    commands pg_catalog.text;
BEGIN
    SELECT pg_catalog.string_agg(c.classid || ' ' || c.objid || ' ' || CASE
               WHEN pg_catalog.starts_with(c.command_tag, 'CREATE ') OR c.command_tag = 'COMMENT'
               THEN '1' ELSE '0' END, ',')
    INTO commands
    FROM pg_catalog.pg_event_trigger_ddl_commands() c;
    IF commands IS NULL AND NOT pg_catalog.starts_with(TG_TAG, 'DROP ') THEN
        {_INCOMPLETE}  -- names no object (GRANT...); a DROP names its objects to sql_drop
    END IF;
    PERFORM {_append(COMMANDS, "coalesce(',' || commands, '')")},
            pg_catalog.set_config('{END}', {COUNTER}::pg_catalog.text, true),
            pg_catalog.set_config('{LSN}', {_WAL}, true);
EXCEPTION WHEN OTHERS THEN
    {_INCOMPLETE}
END"""

#: What a dropped object belonging to a table is, by ``object_type``: its table is the first
#: two of its ``address_names``.
_TABLE_PARTS = "('table constraint', 'default value', 'trigger', 'policy', 'rule')"

#: Dropped objects that are not relations and whose dependents, if any, are dropped with them
#: (and so logged): only the sections read every time show them.
_OTHER_DROPS = (
    "('type', 'function', 'procedure', 'aggregate', 'schema', 'extension', "
    "'domain constraint', 'collation', 'conversion', 'operator', 'operator class', "
    "'operator family', 'cast', 'transform', 'language', 'access method', 'statistics object', "
    "'text search parser', 'text search dictionary', 'text search template', "
    "'text search configuration', 'publication', 'publication relation', "
    "'publication namespace', 'foreign-data wrapper', 'server', 'user mapping', "
    "'default acl', 'event trigger', 'access method operator', 'access method procedure')"
)

#: ``sql_drop``: the relations of what was dropped (an index by name, see the module).
_DROP = f"""
DECLARE
    relations pg_catalog.text;
    indexes pg_catalog.text;
    flags pg_catalog.text;
BEGIN
    WITH dropped AS (
        SELECT d.classid, d.objid, d.objsubid, d.object_type, d.address_names
        FROM pg_catalog.pg_event_trigger_dropped_objects() d
        WHERE d.schema_name IS DISTINCT FROM 'pg_toast'
    ), x AS (
        SELECT d.*,
               CASE WHEN d.object_type IN {_TABLE_PARTS} THEN pg_catalog.to_regclass(
                        pg_catalog.quote_ident(d.address_names[1]) || '.'
                        || pg_catalog.quote_ident(d.address_names[2]))::pg_catalog.oid
                    WHEN d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                         AND d.object_type <> 'index' THEN d.objid
               END AS rel
        FROM dropped d
    )
    SELECT pg_catalog.string_agg(x.rel::pg_catalog.text, ' '),
           pg_catalog.string_agg(CASE WHEN x.object_type = 'index' THEN pg_catalog.json_build_array(
               x.address_names[1], x.address_names[2])::pg_catalog.text END, ','),
           CASE WHEN pg_catalog.bool_or(NOT (
                    x.rel IS NOT NULL
                    OR (x.object_type = 'index' AND pg_catalog.cardinality(x.address_names) = 2)
                    OR x.object_type IN {_OTHER_DROPS}
                    -- a part of a table dropped with it
                    OR (x.object_type IN {_TABLE_PARTS} AND EXISTS (
                        SELECT FROM dropped t
                        WHERE t.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND t.objsubid = 0
                          AND t.address_names = x.address_names[1:2])))) THEN 'U'
                WHEN pg_catalog.bool_or(x.object_type IN {_OTHER_DROPS}) THEN 'O'
                ELSE '' END
    INTO relations, indexes, flags
    FROM x;
    PERFORM {_append(RELATIONS, "' ' || coalesce(relations, '')")},
            {_append(INDEXES, "coalesce(',' || indexes, '')")},
            {_append(FLAGS, "coalesce(flags, '')")};
EXCEPTION WHEN OTHERS THEN
    {_INCOMPLETE}
END"""

#: The functions and events, by the name of the function (the trigger adds the backend's id).
_TRIGGERS: dict[str, tuple[str, str]] = {
    "schemaguard_ddl_start": ("ddl_command_start", _START),
    "schemaguard_ddl_end": ("ddl_command_end", _END),
    "schemaguard_ddl_drop": ("sql_drop", _DROP),
}

#: Whether the log can be installed on this session: a superuser (only one can create event
#: triggers), PL/pgSQL present, no trigger of this session's name left over.
_CAN_INSTALL = (
    "SELECT pg_catalog.current_setting('is_superuser') = 'on' "
    "AND EXISTS (SELECT FROM pg_catalog.pg_language WHERE lanname = 'plpgsql') "
    "AND NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname IN ("
    + ", ".join(f"'{name}_' || pg_catalog.pg_backend_pid()" for name in _TRIGGERS)
    + "))"
)

#: Set to ``0`` to never install the log (every read then computes fingerprints).
DDL_LOG_ENV = "SCHEMAGUARD_DDL_LOG"


def _execute(conn: Any, sql: str) -> Any:
    if hasattr(conn, "exec_driver_sql"):  # SQLAlchemy
        return execute_as_is(conn, sql)
    return conn.execute(sql, prepare=False)


def _in_savepoint(conn: Any, work: Callable[[], bool]) -> bool:
    """``work()`` inside a savepoint of its own, rolled back on any error (then False), so that
    whatever happens, the caller's transaction goes on as it was."""
    try:
        _execute(conn, "SAVEPOINT schemaguard_ddl_log")
    except Exception:  # autocommit: settings would not outlive a statement anyway
        return False
    try:
        done = work()
    except Exception:
        _execute(conn, "ROLLBACK TO SAVEPOINT schemaguard_ddl_log")
        done = False
    _execute(conn, "RELEASE SAVEPOINT schemaguard_ddl_log")
    return done


def _backend_pid(conn: Any) -> int:
    return int(_execute(conn, "SELECT pg_catalog.pg_backend_pid()").fetchone()[0])


def install(conn: Any) -> bool:
    """Install the log on ``conn`` (a SQLAlchemy or psycopg connection in a transaction) when
    it can be; True when it was.  Nothing is changed when it cannot be."""
    if os.environ.get(DDL_LOG_ENV) == "0":
        return False

    def work() -> bool:
        if not _execute(conn, _CAN_INSTALL).fetchone()[0]:
            return False
        pid = _backend_pid(conn)
        # the functions first: creating one fires the triggers already made
        for name, (_event, body) in _TRIGGERS.items():
            _execute(
                conn,
                f"CREATE FUNCTION pg_temp.{name}() RETURNS event_trigger LANGUAGE plpgsql "
                f"AS $schemaguard${body}\n$schemaguard$",
            )
        for name, (event, _body) in _TRIGGERS.items():
            _execute(
                conn,
                f"CREATE EVENT TRIGGER {name}_{pid} ON {event} EXECUTE FUNCTION pg_temp.{name}()",
            )
        # the log starts here: what installing it wrote to the catalog is not a change to read
        _execute(conn, f"SELECT {RESET}")
        return True

    return _in_savepoint(conn, work)


def remove(conn: Any) -> None:
    """Remove the log :func:`install` installed on ``conn`` (if that fails, the triggers go
    with the session, whose temporary functions they run)."""

    def work() -> bool:
        pid = _backend_pid(conn)
        for name in _TRIGGERS:
            _execute(conn, f"DROP EVENT TRIGGER IF EXISTS {name}_{pid}")
        for name in _TRIGGERS:
            _execute(conn, f"DROP FUNCTION IF EXISTS pg_temp.{name}()")
        return True

    _in_savepoint(conn, work)


class PassLog:
    """The log of one migration pass on ``conn``: installed when made (the runner makes it
    right after the pass's first read, so that what runs before, such as revisions replayed
    without checks, does not pay for it), removed by :meth:`close` (before steps that no read
    follows, such as the cycle's), or as soon as :data:`TRIAL_READS` reads went by without one
    that could follow it (as when each revision commits its own transaction, where the log,
    which lives in the transaction, never serves, and the triggers would only cost every DDL
    command time)."""

    #: How many reads may go by without one that follows the log.
    TRIAL_READS = 6

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.on = install(conn)
        self._trial: int | None = self.TRIAL_READS
        """Reads left before the log is removed; None once one followed it."""

    def read(self, logged: bool) -> None:
        """A read was made; ``logged``: it followed the log."""
        if not self.on or self._trial is None:
            return
        if logged:
            self._trial = None
            return
        self._trial -= 1
        if self._trial == 0:
            self.close()

    def close(self) -> None:
        if self.on:
            remove(self.conn)
            self.on = False
