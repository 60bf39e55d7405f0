"""The type of values written into columns, where it is evident from the value alone.

``produced_family(gen_random_uuid())`` is ``("uuid", "gen_random_uuid()")``: such a value cannot
be stored in an INTEGER column. Values whose type depends on context give ``None``.
"""

from __future__ import annotations

from sqlglot import exp

from pytest_schemaguard.legacy.parse import sql_text
from pytest_schemaguard.legacy.pgtypes import from_sqlglot
from pytest_schemaguard.sqltext import one_line

__all__ = ["ACCEPTS", "produced_family"]

# gen_random_uuid() parses to its own node in recent sqlglot versions
_UUID = getattr(exp, "Uuid", None)

_UUID_FUNCTIONS = frozenset(
    {"gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4", "uuidv4"}
    | {"uuidv7", "uuid_generate_v3", "uuid_generate_v5"}
)
_TIME_FUNCTIONS = frozenset(
    {"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp"}
)
_INTEGER_FUNCTIONS = frozenset({"nextval", "currval", "lastval"})
_TIMES = frozenset(
    {
        "timestamp with time zone",
        "timestamp without time zone",
        "date",
        "time with time zone",
        "time without time zone",
    }
)
# what a produced value can be stored in (assignment casts, plus I/O casts to text)
ACCEPTS: dict[str, frozenset[str]] = {
    "uuid": frozenset({"uuid", "text"}),
    "integer": frozenset({"integer", "numeric", "real", "double precision", "money", "text"}),
    "timestamp": _TIMES | {"text"},
    "boolean": frozenset({"boolean", "text"}),
}


def produced_family(value: exp.Expression) -> tuple[str, str] | None:
    """(family, what) for values whose type is evident: uuid, integer, timestamp, boolean."""
    node = value
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Expression):
        node = node.expression
    if _UUID is not None and isinstance(node, _UUID):
        return "uuid", "gen_random_uuid()"
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name in _UUID_FUNCTIONS:
            return "uuid", f"{name}()"
        if name in _INTEGER_FUNCTIONS:
            return "integer", f"{name}()"
        if name in _TIME_FUNCTIONS:
            return "timestamp", f"{name}()"
        return None
    if isinstance(node, exp.CurrentTimestamp):
        return "timestamp", sql_text(node)
    if isinstance(node, exp.Boolean):
        return "boolean", sql_text(node)
    if isinstance(node, exp.Literal) and not node.is_string and node.is_int:
        return "integer", sql_text(node)
    if isinstance(node, exp.Cast) and isinstance(node.to, exp.DataType):
        target = from_sqlglot(node.to)
        family = "timestamp" if target.base in _TIMES else target.family
        if family in ACCEPTS:
            return family, one_line(sql_text(node), 40)
    return None
