"""Schemas and extensions."""

from __future__ import annotations

from typing import Any

from pytest_schemaguard.snapshot.model import Extension, Schema

__all__ = ["EXTENSIONS", "SCHEMAS", "read_extensions", "read_schemas"]

#: ``schemas`` section: the schemas a snapshot covers, with their comments.
SCHEMAS = r"""
    SELECT coalesce(json_agg(json_build_object(
        'name', ns.nspname,
        'comment', dn.description) ORDER BY ns.oid), '[]')
    FROM ns
    LEFT JOIN pg_description dn ON dn.objoid = ns.oid AND dn.classoid = 'pg_namespace'::regclass
        AND dn.objsubid = 0"""

#: ``extensions`` section: every extension but the always-present ``plpgsql``.
EXTENSIONS = r"""
    SELECT coalesce(json_agg(json_build_object(
        'name', e.extname,
        'schema', n.nspname,
        'version', e.extversion) ORDER BY e.oid), '[]')
    FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname <> 'plpgsql'"""


def read_schemas(rows: list[dict[str, Any]]) -> tuple[Schema, ...]:
    return tuple(Schema(s["name"], s["comment"]) for s in rows)


def read_extensions(rows: list[dict[str, Any]]) -> tuple[Extension, ...]:
    return tuple(Extension(**e) for e in rows)
