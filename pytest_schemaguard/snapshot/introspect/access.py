"""Who may see what: row-level security policies and grants (read only with
``include_grants``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pytest_schemaguard.snapshot.model import Grant, Policy

__all__ = ["COLUMN_GRANTS", "POLICIES", "RELATION_GRANTS", "grants", "read_policies"]

#: ``policies`` section: the policies of every relation of the snapshot.
POLICIES = r"""
    SELECT coalesce(json_agg(json_build_array(
        p.polrelid,
        p.polname,
        p.polcmd,
        p.polpermissive,
        ARRAY(
            SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
            FROM unnest(p.polroles) r ORDER BY 1),
        pg_get_expr(p.polqual, p.polrelid),
        pg_get_expr(p.polwithcheck, p.polrelid),
        dp.description) ORDER BY p.polrelid, p.oid), '[]')
    FROM pg_policy p
    LEFT JOIN pg_description dp ON dp.objoid = p.oid AND dp.classoid = 'pg_policy'::regclass
        AND dp.objsubid = 0
    JOIN %(own_rel)s rel ON rel.oid = p.polrelid"""

#: Added to each ``relations`` row with ``include_grants``: the relation's grants to others than
#: its owner.
RELATION_GRANTS = """,
        (
            SELECT coalesce(json_agg(json_build_array(
                CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee) END,
                g.privilege_type, g.is_grantable)), '[]')
            FROM aclexplode(rel.relacl) g
            WHERE g.grantee <> rel.relowner)"""

#: Added to each ``columns`` row with ``include_grants``: the column's grants.
COLUMN_GRANTS = """,
        (SELECT coalesce(json_agg(json_build_array(
            CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee) END,
            g.privilege_type, g.is_grantable)), '[]')
         FROM aclexplode(a.attacl) g
         WHERE g.grantee <> rel.relowner)"""

_POLICY_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


def grants(rows: list[list[Any]] | None, column: str | None = None) -> list[Grant]:
    return [Grant(g[0], g[1], bool(g[2]), column) for g in rows or ()]


def read_policies(rows: list[list[Any]], relnames: dict[int, str]) -> dict[int, list[Policy]]:
    """The policies of each relation, by relation oid."""
    policies: dict[int, list[Policy]] = defaultdict(list)
    for relid, name, command, permissive, roles, using, with_check, comment in rows:
        policies[relid].append(
            Policy(
                name=name,
                table=relnames[relid],
                command=_POLICY_COMMANDS[command],  # type: ignore[arg-type]
                permissive=permissive,
                roles=tuple(roles),
                using=using,
                with_check=with_check,
                comment=comment,
            )
        )
    return policies
