"""Compare the scripts' picture with the real schema; render the findings.

Finding codes:

``parse-error``
    a statement does not parse (or does not even lex: an unterminated string).
``not-utf8``
    a file is not valid UTF-8; the first such line is named, and the file is read with
    replacement characters.
``missing-table``
    the scripts create or use a table the schema does not have.
``missing-column``
    the scripts create a column, or use one (index key or predicate, constraint, INSERT,
    UPDATE, DELETE ... WHERE), that the schema does not have.
``column-not-created``
    a table the scripts create lacks columns the schema's table has.
``key-type``
    a primary-key, unique or foreign-key column has another type in the scripts than in the
    schema (UUID vs INTEGER/BIGINT, text vs UUID, INTEGER vs BIGINT).
``column-type``
    another column has a type of another family (or another integer width) than in the schema.
``fk-type``
    a foreign key whose column type differs from the referenced key's type (in the scripts, or,
    from :func:`check_fk_types`, in the schema itself).
``default-type`` / ``value-type``
    a default (or an INSERT/UPDATE value) that cannot be stored in the schema's column type,
    e.g. ``gen_random_uuid()`` on an INTEGER column.
``missing-type`` / ``enum-labels``
    an enum type the scripts create is absent from the schema, or has other labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_schemaguard.legacy.analysis import LegacyAnalysis
from pytest_schemaguard.legacy.fk_types import Finding, check_fk_types, fk_consequence
from pytest_schemaguard.legacy.pgtypes import SqlType, from_format_type
from pytest_schemaguard.legacy.picture import (
    Picture,
    ScriptColumn,
    ScriptForeignKey,
    ScriptTable,
)
from pytest_schemaguard.legacy.values import ACCEPTS
from pytest_schemaguard.snapshot.introspect import DEFAULT_EXCLUDED_TABLES
from pytest_schemaguard.snapshot.model import Snapshot, Table
from pytest_schemaguard.sqltext import Statement

__all__ = [
    "Finding",
    "check_against_schema",
    "check_fk_types",
    "findings_by_file",
    "render_findings",
]


def _short(qualified: str) -> str:
    return qualified[len("public.") :] if qualified.startswith("public.") else qualified


def _at(
    statement: Statement, code: str, message: str, obj: str, fact: str | None, line: int = 0
) -> Finding:
    return Finding(
        code=code,
        message=message,
        object=obj,
        file=statement.file,
        line=line or statement.line,
        column=statement.column if not line or line == statement.line else None,
        quote=statement.quote,
        schema_fact=fact,
    )


def _accepts(target: SqlType, family: str) -> bool:
    accepted = ACCEPTS[family]
    return target.base in accepted or target.family in accepted


# ------------------------------------------------------------------------------------------------
# the comparison
# ------------------------------------------------------------------------------------------------


class _Checker:
    def __init__(
        self,
        analysis: LegacyAnalysis,
        snapshot: Snapshot,
        exclude_tables: Iterable[str],
        side: str = "the schema",
    ) -> None:
        self.side = side
        self.exclude = frozenset(exclude_tables)
        self.analysis = analysis
        self.picture: Picture = analysis.picture
        self.snapshot = snapshot
        self.findings: list[Finding] = []
        self._seen: set[tuple[str, str | None, int | None, str]] = set()
        self._script_references: dict[str, list[ScriptForeignKey]] | None = None
        self._schema_references: dict[str, list[tuple[str, ...]]] | None = None

    def add(self, finding: Finding) -> None:
        key = (finding.code, finding.file, finding.line, finding.object)
        if key in self._seen:
            return
        # a column reported missing where it is defined is not reported again there as a use
        if finding.code == "missing-column":
            for other in ("missing-column-def",):
                if (other, finding.file, finding.line, finding.object) in self._seen:
                    return
        self._seen.add(key)
        self.findings.append(finding)

    def excluded(self, qualified: str) -> bool:
        return qualified in self.exclude or qualified.rpartition(".")[2] in self.exclude

    def schema_table(self, qualified: str) -> Table | None:
        return self.snapshot.get_table(qualified)

    def run(self) -> list[Finding]:
        self.parse_errors()
        live = [
            t
            for t in self.picture.live_tables
            if not t.temporary and not self.excluded(t.qualified_name)
        ]
        for table in live:
            self.table(table)
        self.uses()
        for table in live:
            for fk in table.foreign_keys:
                self.script_fk(table, fk)
        self.writes()
        self.enums()
        return self.findings

    # -- statements that do not parse --------------------------------------------------------

    def parse_errors(self) -> None:
        for problem in self.analysis.decode_problems:
            self.add(
                Finding(
                    code="not-utf8",
                    message=(
                        f"the file is not valid UTF-8: {problem.detail} at column "
                        f"{problem.column}; read with replacement characters"
                    ),
                    object=problem.file,
                    file=problem.file,
                    line=problem.line,
                    column=problem.column,
                )
            )
        for parsed in self.analysis.parse_errors:
            stmt = parsed.statement
            where = ""
            if parsed.error_line is not None and parsed.error_column is not None:
                where = f" (line {parsed.error_line}, column {parsed.error_column})"
            self.add(
                Finding(
                    code="parse-error",
                    message=f"statement does not parse: {parsed.reason}{where}",
                    object=stmt.location,
                    file=stmt.file,
                    line=stmt.line,
                    column=stmt.column,
                    quote=stmt.quote,
                )
            )

    # -- tables and their columns ------------------------------------------------------------

    def table(self, table: ScriptTable) -> None:
        schema_table = self.schema_table(table.qualified_name)
        name = table.qualified_name
        if schema_table is None:
            others = self.picture.mention_counts.get(name, 0) - 1
            also = f"; {others} more statement(s) use it" if others > 0 else ""
            verb = "created here" if table.created else "used here"
            self.add(
                _at(
                    table.source,
                    "missing-table",
                    f"table {_short(name)} is {verb} but does not exist in {self.side}{also}",
                    name,
                    f"{self.side} has no table {name}",
                )
            )
            return
        keys = self.key_columns(table, schema_table)
        for column in table.live_columns:
            self.column(table, schema_table, column, column.name in keys)
        if table.created:
            self.not_created(table, schema_table)

    def key_columns(self, table: ScriptTable, schema_table: Table) -> set[str]:
        keys: set[str] = set()
        if table.primary_key is not None:
            keys.update(r.current_name for r in table.primary_key.columns)
        for unique in table.uniques:
            keys.update(r.current_name for r in unique.columns)
        for fk in table.foreign_keys:
            keys.update(r.current_name for r in fk.columns)
        for fk in self.script_references().get(table.qualified_name, ()):
            keys.update(r.current_name for r in fk.referenced_columns)
            if not fk.referenced_columns and table.primary_key is not None:
                keys.update(r.current_name for r in table.primary_key.columns)
        for constraint in schema_table.constraints:
            if constraint.kind in ("primary_key", "unique", "foreign_key"):
                keys.update(constraint.columns)
        for columns in self.schema_references().get(schema_table.qualified_name, ()):
            keys.update(columns)
        return keys

    def script_references(self) -> dict[str, list[ScriptForeignKey]]:
        """The scripts' foreign keys by the table they reference (made once)."""
        if self._script_references is None:
            self._script_references = {}
            for other in self.picture.live_tables:
                for fk in other.foreign_keys:
                    self._script_references.setdefault(fk.referenced.current_name, []).append(fk)
        return self._script_references

    def schema_references(self) -> dict[str, list[tuple[str, ...]]]:
        """The schema's referenced key columns by the table they belong to (made once)."""
        if self._schema_references is None:
            self._schema_references = {}
            for other_table in self.snapshot.tables:
                for constraint in other_table.foreign_keys:
                    self._schema_references.setdefault(
                        constraint.referenced_table or "", []
                    ).append(constraint.referenced_columns)
        return self._schema_references

    def column(
        self, table: ScriptTable, schema_table: Table, column: ScriptColumn, is_key: bool
    ) -> None:
        obj = column.qualified_name
        shown = _short(obj)
        schema_column = schema_table.get_column(column.name)
        if schema_column is None:
            if not column.defined:
                return  # only altered or renamed: reported as a use where it matters
            known = [c.name for c in schema_table.columns if table.column(c.name) is None]
            hint = f" ({self.side}'s columns the scripts lack: {', '.join(known)})" if known else ""
            self.add(
                _at(
                    column.source,
                    "missing-column",
                    f"column {shown} is created here but {self.side} has no such column{hint}",
                    obj,
                    f"{_short(schema_table.qualified_name)} has no column {column.name}",
                    column.line,
                )
            )
            self._seen.add(("missing-column-def", column.source.file, column.line, obj))
            return
        if column.type is None:
            return
        schema_type = from_format_type(schema_column.type, schema_column.base_type)
        if not _type_differs(column.type, schema_type):
            return
        code = "key-type" if is_key else "column-type"
        self.add(
            _at(
                column.type_source,
                code,
                f"{shown} is {column.type.text} here but {schema_column.type} in {self.side}",
                obj,
                f"{obj} is {schema_column.type}",
                column.line,
            )
        )

    def not_created(self, table: ScriptTable, schema_table: Table) -> None:
        missing = [c for c in schema_table.columns if table.column(c.name) is None]
        if not missing:
            return
        listed = ", ".join(f"{c.name} ({c.type})" for c in missing)
        plural = "s" if len(missing) > 1 else ""
        self.add(
            _at(
                table.source,
                "column-not-created",
                f"the scripts never create column{plural} {listed} of "
                f"{_short(table.qualified_name)}, which {self.side} has",
                table.qualified_name,
                f"{schema_table.qualified_name} has {listed}",
            )
        )

    # -- columns used by statements ----------------------------------------------------------

    def uses(self) -> None:
        for use in self.picture.uses:
            ref = use.ref
            if ref.dropped:
                continue
            table_name = ref.current_table
            if self.excluded(table_name):
                continue
            script_table = self.picture.table(table_name)
            if script_table is not None and script_table.temporary:
                continue
            schema_table = self.schema_table(table_name)
            if schema_table is None:
                continue  # reported once as missing-table
            if schema_table.has_column(ref.current_name):
                continue
            obj = f"{table_name}.{ref.current_name}"
            self.add(
                _at(
                    use.source,
                    "missing-column",
                    f"{use.context} uses column {_short(obj)}, which {self.side} does not have",
                    obj,
                    f"{_short(table_name)} has no column {ref.current_name}",
                    use.line,
                )
            )

    # -- foreign keys in the scripts ---------------------------------------------------------

    def column_type(self, table_name: str, column_name: str) -> tuple[SqlType, str] | None:
        """The type of a column: from the scripts when they define it, else from the schema."""
        script_table = self.picture.table(table_name)
        if script_table is not None:
            col = script_table.column(column_name)
            if col is not None and col.type is not None:
                return col.type, "scripts"
        schema_table = self.schema_table(table_name)
        if schema_table is not None:
            schema_col = schema_table.get_column(column_name)
            if schema_col is not None:
                return from_format_type(schema_col.type, schema_col.base_type), "schema"
        return None

    def referenced_names(self, fk: ScriptForeignKey) -> list[str]:
        if fk.referenced_columns:
            return [r.current_name for r in fk.referenced_columns]
        target = self.picture.table(fk.referenced.current_name)
        if target is not None and target.primary_key is not None:
            return [r.current_name for r in target.primary_key.columns]
        schema_table = self.schema_table(fk.referenced.current_name)
        if schema_table is not None and schema_table.primary_key is not None:
            return list(schema_table.primary_key.columns)
        return []

    def script_fk(self, table: ScriptTable, fk: ScriptForeignKey) -> None:
        referenced = fk.referenced.current_name
        for ref, target in zip(fk.columns, self.referenced_names(fk), strict=False):
            if ref.dropped:
                continue
            own = self.column_type(table.qualified_name, ref.current_name)
            other = self.column_type(referenced, target)
            if own is None or other is None or own[0].same_as(other[0]):
                continue
            (own_type, _), (other_type, other_side) = own, other
            consequence = fk_consequence(own_type, other_type)
            source_note = "" if other_side == "scripts" else f" in {self.side}"
            obj = f"{table.qualified_name}.{ref.current_name}"
            self.add(
                _at(
                    fk.source,
                    "fk-type",
                    f"foreign key {_short(table.qualified_name)}({ref.current_name}) is "
                    f"{own_type.storage} but references {_short(referenced)}({target}), which "
                    f"is {other_type.storage}{source_note}: {consequence}",
                    obj,
                    f"{referenced}.{target} is {other_type.storage}"
                    if other_side == "schema"
                    else None,
                    fk.line,
                )
            )

    # -- values written ----------------------------------------------------------------------

    def writes(self) -> None:
        for write in self.picture.writes:
            ref = write.ref
            if ref.dropped:
                continue
            family, what = write.family, write.what
            schema_table = self.schema_table(ref.current_table)
            if schema_table is None:
                continue
            schema_column = schema_table.get_column(ref.current_name)
            if schema_column is None:
                continue
            target = from_format_type(schema_column.type, schema_column.base_type)
            if _accepts(target, family):
                continue
            obj = f"{ref.current_table}.{ref.current_name}"
            code = "default-type" if write.context == "DEFAULT" else "value-type"
            self.add(
                _at(
                    write.source,
                    code,
                    f"{write.context} {what} cannot be stored in {_short(obj)}, which is "
                    f"{schema_column.type} in {self.side}",
                    obj,
                    f"{obj} is {schema_column.type}",
                    write.line,
                )
            )

    # -- enum types --------------------------------------------------------------------------

    def enums(self) -> None:
        known = {e.qualified_name: e for e in self.snapshot.enums}
        for enum in self.picture.live_enums:
            schema_enum = known.get(enum.qualified_name)
            name = enum.qualified_name
            if schema_enum is None:
                self.add(
                    _at(
                        enum.source,
                        "missing-type",
                        f"enum type {_short(name)} is created here but {self.side} has no "
                        "such type",
                        name,
                        f"{self.side} has no type {name}",
                    )
                )
            elif tuple(schema_enum.labels) != enum.labels:
                self.add(
                    _at(
                        enum.source,
                        "enum-labels",
                        f"enum type {_short(name)} has labels {', '.join(enum.labels)} here "
                        f"but {', '.join(schema_enum.labels)} in {self.side}",
                        name,
                        f"{name} has labels {', '.join(schema_enum.labels)}",
                    )
                )


def _type_differs(script: SqlType, schema: SqlType) -> bool:
    if script.family != schema.family:
        return True
    if script.family == "integer":
        return script.base != schema.base
    if script.family == "array":
        return (
            from_format_type(script.base[:-2]).family != from_format_type(schema.base[:-2]).family
        )
    return False


def check_against_schema(
    analysis: LegacyAnalysis,
    snapshot: Snapshot,
    *,
    exclude_tables: Iterable[str] = DEFAULT_EXCLUDED_TABLES,
    side: str = "the schema",
) -> list[Finding]:
    """Everything in the scripts that disagrees with ``snapshot``, plus their parse errors.

    Tables named in ``exclude_tables`` (bare or ``schema.name``) are not compared; by default
    that is what snapshots leave out (``alembic_version``). ``side`` is how messages name what
    ``snapshot`` describes (``the schema``; ``the ORM schema`` for the models'). Findings come in
    a stable order: by file (in analysis order), line, then code.
    """
    findings = _Checker(analysis, snapshot, exclude_tables, side).run()
    order = {name: i for i, name in enumerate(analysis.files)}
    return sorted(
        findings,
        key=lambda f: (order.get(f.file or "", len(order)), f.line or 0, f.code, f.object),
    )


def findings_by_file(findings: Iterable[Finding]) -> dict[str | None, list[Finding]]:
    """Findings grouped by script file (``None``: findings on the schema itself), in order."""
    groups: dict[str | None, list[Finding]] = {}
    for finding in findings:
        groups.setdefault(finding.file, []).append(finding)
    return groups


def render_findings(
    findings: Sequence[Finding],
    analysis: LegacyAnalysis | None = None,
    *,
    show_not_analysed: bool = True,
) -> str:
    """Terminal text: one line per finding grouped by file, the not-analysed list, a summary.

    ::

        db/ddl/001_core.sql
          db/ddl/001_core.sql:12: [key-type] time_entries.id is uuid here but integer in ...
        not analysed (2)
          db/ddl/000_extensions.sql:1: CREATE EXTENSION: the parser gives no structure ...
        legacy DDL: 14 statements: 11 analysed, 1 irrelevant, 2 not analysed, 0 parse errors;
        5 findings
    """
    lines: list[str] = []
    for file, group in findings_by_file(findings).items():
        lines.append(file if file is not None else "schema")
        lines.extend(f"  {f.render()}" for f in group)
    if analysis is not None and show_not_analysed and analysis.not_analysed:
        lines.append(f"not analysed ({len(analysis.not_analysed)})")
        lines.extend(
            f"  {n.location}: {n.reason} ({n.statement.quote})" for n in analysis.not_analysed
        )
    count = len(findings)
    summary = f"{count} finding{'s' if count != 1 else ''}"
    if analysis is not None:
        summary = f"{analysis.summary()}; {summary}"
    lines.append(f"legacy DDL: {summary}")
    return "\n".join(lines)
