"""The ``fk_types`` check: every foreign-key column has the type of the key it references.

It reads only the schema snapshot (no SQL parsing), so it runs whether or not ``legacy_ddl`` is
configured, and imports nothing of the legacy-DDL parser.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_schemaguard.legacy.pgtypes import SqlType, from_format_type
from pytest_schemaguard.snapshot.model import Snapshot

__all__ = ["Finding", "check_fk_types", "fk_consequence"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One disagreement, with where it is and what the schema says."""

    code: str
    """Kind of finding: ``key-type``, ``missing-column``... (see the module docstring)."""
    message: str
    """One line, without the location: ``time_entries.id is uuid here but integer in the
    schema``."""
    object: str
    """What it is about, qualified: ``public.time_entries.id``, ``public.time_entries``."""
    file: str | None = None
    """Script file (relative, forward slashes); ``None`` for a finding on the schema itself."""
    line: int | None = None
    column: int | None = None
    quote: str | None = None
    """The statement on one line, cut to about 80 characters."""
    schema_fact: str | None = None
    """What the schema has: ``public.time_entries.id is integer``."""
    constraint: str | None = None
    """The foreign key a ``fk-type`` finding is about: ``public.time_entries.fk_owner``."""

    @property
    def location(self) -> str:
        if self.file is None:
            return "schema"
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def render(self) -> str:
        """``file:line: [code] message (quote)``, one line."""
        text = f"{self.location}: [{self.code}] {self.message}"
        if self.quote:
            text += f" ({self.quote})"
        return text


def _short(qualified: str) -> str:
    return qualified[len("public.") :] if qualified.startswith("public.") else qualified


def fk_consequence(own: SqlType, other: SqlType) -> str:
    if own.family != other.family:
        return "PostgreSQL cannot create this foreign key (incompatible types)"
    own_width, other_width = own.integer_width, other.integer_width
    if own_width is not None and other_width is not None:
        if own_width < other_width:
            return "latent overflow once the referenced key outgrows the column"
        return "the column is wider than the key it references"
    return "the types differ"


def check_fk_types(snapshot: Snapshot) -> list[Finding]:
    """Every foreign-key column must have exactly the type of the key column it references."""
    findings: list[Finding] = []
    for table in snapshot.tables:
        for fk in table.foreign_keys:
            referenced = snapshot.get_table(fk.referenced_table or "")
            if referenced is None:
                continue
            for own_name, other_name in zip(fk.columns, fk.referenced_columns, strict=False):
                own = table.get_column(own_name)
                other = referenced.get_column(other_name)
                if own is None or other is None or own.type == other.type:
                    continue
                consequence = fk_consequence(
                    from_format_type(own.type, own.base_type),
                    from_format_type(other.type, other.base_type),
                )
                findings.append(
                    Finding(
                        code="fk-type",
                        message=(
                            f"foreign key {fk.name}: {_short(table.qualified_name)}.{own_name} "
                            f"is {own.type} but references "
                            f"{_short(referenced.qualified_name)}.{other_name}, which is "
                            f"{other.type}: {consequence}"
                        ),
                        object=f"{table.qualified_name}.{own_name}",
                        schema_fact=f"{table.qualified_name}: {fk.definition}",
                        constraint=f"{table.qualified_name}.{fk.name}",
                    )
                )
    return findings
