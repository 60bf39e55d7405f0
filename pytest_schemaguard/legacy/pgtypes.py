"""Column types on both sides, reduced to PostgreSQL's own spelling and a *family*.

The scripts give types as sqlglot ``DataType`` nodes (``INT``, ``SERIAL``, ``VARCHAR(20)``);
the schema gives them as ``format_type`` text (``integer``, ``character varying(20)``). Both
become a :class:`SqlType` with the ``format_type`` base name, so they compare directly.

Families group types that are interchangeable for the purposes of this check: the integer
family (``smallint``, ``integer``, ``bigint``), the text family (``text``, ``varchar``,
``char``, ``citext``), ``uuid``, and one family per other type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["SqlType", "from_format_type", "from_sqlglot"]


_INTEGER_WIDTH = {"smallint": 2, "integer": 4, "bigint": 8}
_TEXT = frozenset({"text", "character varying", "character", "citext", "name", "bpchar"})

# sqlglot DataType.Type name -> format_type base name
_BASE: dict[str, str] = {
    "SMALLINT": "smallint",
    "INT": "integer",
    "BIGINT": "bigint",
    "SMALLSERIAL": "smallint",
    "SERIAL": "integer",
    "BIGSERIAL": "bigint",
    "UUID": "uuid",
    "TEXT": "text",
    "VARCHAR": "character varying",
    "NVARCHAR": "character varying",
    "CHAR": "character",
    "NCHAR": "character",
    "NAME": "name",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIME": "time without time zone",
    "TIMETZ": "time with time zone",
    "TIMESTAMP": "timestamp without time zone",
    "TIMESTAMPTZ": "timestamp with time zone",
    "INTERVAL": "interval",
    "DECIMAL": "numeric",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "JSON": "json",
    "JSONB": "jsonb",
    "VARBINARY": "bytea",
    "INET": "inet",
    "CIDR": "cidr",
    "MONEY": "money",
    "XML": "xml",
    "BIT": "bit",
    "VARBIT": "bit varying",
    "VECTOR": "vector",
    "HSTORE": "hstore",
}
_USER_SERIALS = {"serial2": "smallint", "serial4": "integer", "serial8": "bigint"}


@dataclass(frozen=True)
class SqlType:
    """A column type: ``base`` as ``format_type`` spells it without modifiers."""

    base: str
    """``integer``, ``character varying``, ``uuid``, ``order_status`` (schema ``public``
    omitted), ``integer[]`` for arrays."""
    text: str
    """How to show it: ``character varying(20)``, ``serial``..."""
    serial: bool = False

    @property
    def storage(self) -> str:
        """The type as stored: ``bigint`` for ``bigserial``, else :attr:`text`."""
        return self.base if self.serial else self.text

    @property
    def family(self) -> str:
        """``integer``, ``text``, ``uuid``, or the base name for every other type."""
        if self.base.endswith("[]"):
            return "array"
        if self.base in _INTEGER_WIDTH:
            return "integer"
        if self.base in _TEXT:
            return "text"
        return self.base

    @property
    def integer_width(self) -> int | None:
        return _INTEGER_WIDTH.get(self.base)

    def same_as(self, other: SqlType) -> bool:
        """Same type, ignoring modifiers (lengths, precisions)."""
        return self.base == other.base


def _strip_public(name: str) -> str:
    return name[len("public.") :] if name.startswith("public.") else name


def from_format_type(text: str, base_type: str = "") -> SqlType:
    """The type of a snapshot column (``format_type`` text, and its base when known)."""
    base = base_type or text
    array = text.endswith("[]")
    if "(" in base:
        head, _, rest = base.partition("(")
        tail = rest.partition(")")[2]
        base = (head.rstrip() + tail).strip()
    base = _strip_public(base.strip('"'))
    if array and not base.endswith("[]"):
        base += "[]"
    return SqlType(base=base, text=text)


def from_sqlglot(node: exp.DataType) -> SqlType:
    """The type of a column the scripts define."""
    # the parser is imported here: fk_types reads format_type text only and never needs it
    from sqlglot import exp

    from pytest_schemaguard.legacy.parse import sql_text

    text = sql_text(node)
    kind = node.this
    name = kind.name if hasattr(kind, "name") else str(kind)
    if name == "ARRAY":
        inner = node.expressions[0] if node.expressions else None
        element = from_sqlglot(inner) if isinstance(inner, exp.DataType) else None
        base = (element.base if element else "unknown") + "[]"
        return SqlType(base=base.replace("[][]", "[]"), text=text.lower())
    if name == "USERDEFINED":
        user = node.args.get("kind")
        user_name = sql_text(user) if user is not None else text
        user_name = _strip_public(user_name.replace('"', ""))
        if user_name.lower() in _USER_SERIALS:
            return SqlType(base=_USER_SERIALS[user_name.lower()], text=user_name, serial=True)
        return SqlType(base=user_name, text=user_name)
    base = _BASE.get(name) or text.split("(")[0].strip().lower()
    serial = name in ("SMALLSERIAL", "SERIAL", "BIGSERIAL")
    shown = name.lower() if serial else _show(base, node)
    return SqlType(base=base, text=shown, serial=serial)


def _show(base: str, node: exp.DataType) -> str:
    from pytest_schemaguard.legacy.parse import sql_text

    params = [sql_text(p) for p in node.expressions]
    if not params:
        return base
    if base.startswith("timestamp") or base.startswith("time "):
        word, _, zone = base.partition(" ")
        return f"{word}({', '.join(params)}) {zone}"
    return f"{base}({','.join(params)})"
