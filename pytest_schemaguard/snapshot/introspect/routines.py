"""Functions (procedures, aggregates, window functions) and triggers."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pytest_schemaguard.snapshot.model import Function, Trigger

__all__ = ["FUNCTIONS", "TRIGGERS", "read_functions", "read_triggers"]

#: ``triggers`` section (second query): user triggers, not those a partition inherits.
TRIGGERS = r"""
    SELECT coalesce(json_agg(json_build_array(
        tg.tgrelid,
        tg.tgname,
        pg_get_triggerdef(tg.oid),
        tg.tgenabled,
        dt.description) ORDER BY tg.tgrelid, tg.oid), '[]')
    FROM pg_trigger tg
    LEFT JOIN pg_description dt ON dt.objoid = tg.oid AND dt.classoid = 'pg_trigger'::regclass
        AND dt.objsubid = 0
    JOIN %(own_rel)s rel ON rel.oid = tg.tgrelid
    WHERE NOT tg.tgisinternal AND tg.tgparentid = 0"""

#: ``functions`` section (second query): every routine not owned by an extension.
FUNCTIONS = r"""
    SELECT coalesce(json_agg(json_build_object(
        'schema', ns.nspname,
        'name', p.proname,
        'arguments', pg_get_function_identity_arguments(p.oid),
        'kind', p.prokind,
        'result', CASE WHEN p.prokind <> 'p' THEN pg_get_function_result(p.oid) END,
        'language', l.lanname,
        'volatility', p.provolatile,
        'security_definer', p.prosecdef,
        'strict', p.proisstrict,
        'definition', CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END,
        'body', CASE WHEN p.prokind <> 'a' THEN p.prosrc END,
        'comment', dpr.description) ORDER BY p.oid), '[]')
    FROM pg_proc p
    LEFT JOIN pg_description dpr ON dpr.objoid = p.oid AND dpr.classoid = 'pg_proc'::regclass
        AND dpr.objsubid = 0
    JOIN ns ON ns.oid = p.pronamespace
    JOIN pg_language l ON l.oid = p.prolang
    WHERE p.oid >= %(first_user_oid)s AND NOT EXISTS (
        SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)"""

_TRIGGER_ENABLED = {"O": "origin", "A": "always", "R": "replica", "D": "disabled"}
_FUNCTION_KINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}
_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}


def read_triggers(rows: list[list[Any]], relnames: dict[int, str]) -> dict[int, list[Trigger]]:
    """The triggers of each relation, by relation oid."""
    triggers: dict[int, list[Trigger]] = defaultdict(list)
    for relid, name, definition, enabled, comment in rows:
        triggers[relid].append(
            Trigger(
                name=name,
                table=relnames[relid],
                definition=definition,
                enabled=_TRIGGER_ENABLED[enabled],  # type: ignore[arg-type]
                comment=comment,
            )
        )
    return triggers


def read_functions(rows: list[dict[str, Any]]) -> tuple[Function, ...]:
    return tuple(
        Function(
            schema=f["schema"],
            name=f["name"],
            arguments=f["arguments"],
            kind=_FUNCTION_KINDS[f["kind"]],  # type: ignore[arg-type]
            result=f["result"],
            language=f["language"],
            volatility=_VOLATILITY[f["volatility"]],  # type: ignore[arg-type]
            security_definer=f["security_definer"],
            strict=f["strict"],
            definition=f["definition"],
            body=f["body"],
            comment=f["comment"],
        )
        for f in rows
    )
