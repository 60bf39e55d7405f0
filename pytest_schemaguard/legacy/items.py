"""The ``legacy_ddl[<file>]`` and ``fk_types`` items.

:func:`install` (called from :mod:`pytest_schemaguard.items` at configure time) registers this
module as a plugin (its fixture and terminal summary) and adds :func:`legacy_checks` as a
provider of check items.

- ``legacy_ddl[<file>]``: one item per file matched by the ``legacy_ddl`` globs (in order; a
  later file sees what earlier ones created), comparing what the scripts do with the schema the
  migrations build at head.
- ``fk_types``: every foreign-key column of the migrated schema has exactly the type of the key
  it references.

Statements the parser cannot structure are listed in the terminal summary ("not analysed"),
never dropped silently.

The SQL parser (sqlglot, through :mod:`.analysis` and :mod:`.check`) is imported only when
``legacy_ddl`` is configured; ``fk_types`` reads the snapshot alone (:mod:`.fk_types`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_schemaguard import framework as schemaguard_items
from pytest_schemaguard.config import Settings
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.runner import CheckResult
from pytest_schemaguard.parity.items import metadata_overridden, require_migrations
from pytest_schemaguard.report.findings import Finding as ReportFinding

if TYPE_CHECKING:
    # the checks are imported when an item of theirs runs
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection

    from pytest_schemaguard.legacy.analysis import LegacyAnalysis
    from pytest_schemaguard.legacy.fk_types import Finding
    from pytest_schemaguard.parity.checks import ParityChecks
    from pytest_schemaguard.snapshot.model import Snapshot

__all__ = ["LegacyChecks", "install", "legacy_checks", "schemaguard_legacy"]

PLUGIN_NAME = "schemaguard-legacy"
LEGACY_KEY: pytest.StashKey[LegacyChecks] = pytest.StashKey()


def install(config: pytest.Config) -> None:
    """Register the legacy fixture and summary hook, and the provider of the items."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(sys.modules[__name__], PLUGIN_NAME)
    schemaguard_items.register_provider(legacy_checks)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def legacy_checks(
    session: pytest.Session, settings: Settings, anchor: schemaguard_items.Anchor
) -> list[schemaguard_items.CheckSpec]:
    """``fk_types`` always, ``legacy_ddl[…]`` per configured file (skipped or failed when the
    migrations cannot be read)."""
    specs = [schemaguard_items.CheckSpec("fk_types", _run_fk_types, "fk_types", str(anchor.path))]
    if settings.legacy_ddl:
        # the SQL parser is imported only for a project that has legacy DDL to read
        from pytest_schemaguard.legacy.analysis import expand_globs

        files = expand_globs(settings.legacy_ddl, root=settings.root)
        if not files:
            patterns = ", ".join(settings.legacy_ddl)
            message = (
                f"legacy_ddl = [{patterns}] matched no file under {settings.root}; fix the globs "
                f"({settings.describe('legacy_ddl')}) or remove the setting"
            )

            def nothing_matched() -> None:
                raise schemaguard_items.CheckFailure("legacy_ddl", [message])

            specs.append(schemaguard_items.CheckSpec("legacy_ddl", nothing_matched, "legacy_ddl"))
        with_models = bool(settings.metadata) or metadata_overridden(session)
        for path in files:
            shown = _relative(path, settings.root)
            specs.append(
                schemaguard_items.CheckSpec(
                    f"legacy_ddl[{shown}]",
                    _file_check(shown, with_models),
                    "legacy_ddl",
                    str(path),
                )
            )
    return specs


def _file_check(shown: str, with_models: bool) -> Callable[..., None]:
    def run_legacy_ddl(request: pytest.FixtureRequest) -> None:
        require_migrations(request)
        schemaguard_legacy: LegacyChecks = request.getfixturevalue("schemaguard_legacy")
        metadata = None
        if with_models:
            try:
                metadata = request.getfixturevalue("schemaguard_metadata")
            except SchemaguardError as exc:
                schemaguard_legacy.models_error = str(exc)
        schemaguard_items.report(schemaguard_legacy.file_result(shown, metadata))

    return run_legacy_ddl


def _run_fk_types(request: pytest.FixtureRequest) -> None:
    require_migrations(request)
    schemaguard_legacy: LegacyChecks = request.getfixturevalue("schemaguard_legacy")
    schemaguard_items.report(schemaguard_legacy.fk_types_result())


@dataclass
class LegacyChecks:
    """The analysis of the scripts and the schema at head, each made once per session."""

    settings: Settings
    parity: ParityChecks
    _analysis: LegacyAnalysis | None = None
    _findings: list[Finding] | None = None
    _model_findings: list[Finding] | None = None
    models_error: str | None = None
    """Why the scripts could not also be compared with the ORM models."""
    reported: set[str] = field(default_factory=set)

    @property
    def analysis(self) -> LegacyAnalysis:
        if self._analysis is None:
            from pytest_schemaguard.legacy.analysis import analyse_files, expand_globs

            files = expand_globs(self.settings.legacy_ddl, root=self.settings.root)
            self._analysis = analyse_files(files, root=self.settings.root)
        return self._analysis

    def _head(self, title: str) -> Snapshot | CheckResult:
        from pytest_schemaguard.parity.migrated import MigrationFailed

        try:
            return self.parity.head_snapshot()
        except MigrationFailed as exc:
            return self.parity._migration_failure(title, exc)

    def file_result(self, shown: str, metadata: MetaData | None = None) -> CheckResult:
        """The findings of one file against the schema at head and, with ``metadata``, against
        the schema the ORM models build (those not already found against the schema)."""
        models = " and the ORM models" if metadata is not None else ""
        title = f"legacy_ddl: {shown} against the schema the migrations build at head{models}"
        head = self._head(title)
        if isinstance(head, CheckResult):
            return head
        from pytest_schemaguard.legacy.check import check_against_schema

        if self._findings is None:
            self._findings = check_against_schema(self.analysis, head)
        if metadata is not None and self._model_findings is None:
            try:
                models_schema = self.parity.models_snapshot(metadata)
            except SchemaguardError as exc:
                self.models_error = str(exc).splitlines()[0]
                self._model_findings = []
            else:
                self._model_findings = check_against_schema(
                    self.analysis, models_schema, side="the ORM schema"
                )
        self.reported.add(shown)
        mine = [f for f in self._findings if f.file == shown]
        known = {(f.code, f.line, f.object) for f in mine}
        from_models = [
            f
            for f in self._model_findings or ()
            if f.file == shown and (f.code, f.line, f.object) not in known
        ]
        sides = {id(f): "models" for f in from_models}
        mine += from_models
        warnings = []
        if self.models_error is not None:
            warnings.append(f"{shown} was not compared with the ORM models: {self.models_error}")
        if not mine:
            return CheckResult("passed", title, [], warnings)
        mine.sort(key=lambda f: (f.line or 0, f.code, f.object))
        lines = [_render(f) for f in mine]
        root = self.settings.root
        findings = [
            _legacy_finding(f, line, sides.get(id(f), "migrations at head"), root)
            for f, line in zip(mine, lines, strict=True)
        ]
        count = len(mine)
        lines.append(f"{count} finding{'s' if count != 1 else ''} in {shown}")
        return CheckResult("failed", title, lines, warnings, findings=findings)

    def fk_types_result(self) -> CheckResult:
        title = (
            "fk_types: foreign keys of the schema at head have the type of the key they reference"
        )
        head = self._head(title)
        if isinstance(head, CheckResult):
            return head
        from pytest_schemaguard.legacy.fk_types import check_fk_types

        findings = check_fk_types(head)
        if not findings:
            return CheckResult("passed", title, [])
        origins = self._origins()
        named = self._with_origins(findings, origins)
        return CheckResult(
            "failed",
            title,
            [_render(f) for f in named],
            findings=[self._fk_finding(f, head, origins) for f in named],
        )

    def _fk_finding(
        self, finding: Finding, head: Snapshot, origins: dict[str, tuple[str, int | None]]
    ) -> ReportFinding:
        """The finding in the JSON report: the referencing column (``object``) and the
        referenced one (``references``) with their types, at the line of the revision file
        whose upgrade created the foreign key (when it is known)."""
        table_name, _, fk_name = (finding.constraint or "").rpartition(".")
        column = finding.object.rpartition(".")[2]
        table = head.get_table(table_name)
        fk = next((c for c in table.foreign_keys if c.name == fk_name), None) if table else None
        own = table.get_column(column) if table else None
        references = other = None
        if fk is not None and column in fk.columns and fk.referenced_table:
            target = fk.referenced_columns[fk.columns.index(column)]
            references = f"{fk.referenced_table}.{target}"
            referenced = head.get_table(fk.referenced_table)
            other = referenced.get_column(target) if referenced else None
        origin = origins.get(finding.constraint or "")
        history = self.parity.history
        path = line = None
        if origin is not None and origin[0] in history:
            path = str(self.parity.project.rootdir / history.info(origin[0]).path)
            line = origin[1]
        return ReportFinding(
            kind="column",
            object=finding.object,
            attribute="type",
            category="changed",
            left_label="referencing",
            left=own.type if own else None,
            right_label="referenced",
            right=other.type if other else None,
            message=finding.message,
            file=path,
            line=line,
            rule=finding.code,
            revision=origin[0] if origin else None,
            table=table_name or None,
            references=references,
        )

    def _origins(self) -> dict[str, tuple[str, int | None]]:
        """The revision whose upgrade created each foreign key of the schema at head, and the
        line of its file that sent the statement (``schema.table.name`` -> (revision, line));
        empty when the pass fails (the migration checks report the failure).

        Only a failing check pays for it: one more pass to head in a scratch database of its
        own, reading the foreign keys' names after each statement sent from a revision file
        (the schema at head may come from the migration checks, which do not keep what each
        revision created).
        """
        parity = self.parity
        try:
            return _foreign_key_origins(parity)
        except SchemaguardError:
            return {}

    def _with_origins(
        self, findings: list[Finding], origins: dict[str, tuple[str, int | None]]
    ) -> list[Finding]:
        """Each finding naming the revision whose upgrade created its foreign key: ``...
        (created by revision 3f2a9c (add status), versions/3f2a9c_add_status.py)``, from
        :meth:`_origins` (when that pass failed, the findings stay as they are).
        """
        history = self.parity.history
        out = []
        for finding in findings:
            origin = origins.get(finding.constraint or "")
            rev = origin[0] if origin is not None else None
            if rev is not None and rev in history:
                where = f"revision {history.describe(rev)}, {history.info(rev).path}"
                finding = dataclasses.replace(
                    finding, message=f"{finding.message} (created by {where})"
                )
            out.append(finding)
        return out

    def summary_lines(self) -> list[str]:
        """For the terminal summary: per file, what was analysed and what was not."""
        if self._analysis is None:
            return []
        analysis = self._analysis
        lines = [f"schemaguard legacy DDL: {analysis.summary()}"]
        if analysis.not_analysed:
            lines.append(f"  not analysed ({len(analysis.not_analysed)}):")
            lines.extend(
                f"    {n.location}: {n.reason} ({n.statement.quote})" for n in analysis.not_analysed
            )
        return lines


def _render(finding: Finding) -> str:
    return finding.render()


_LEGACY_SHAPES = {
    # code: (kind, attribute, category)
    "parse-error": ("statement", None, "unparsed"),
    "not-utf8": ("file", None, "unparsed"),
    "missing-table": ("table", None, "only_left"),
    "missing-column": ("column", None, "only_left"),
    "missing-type": ("enum", None, "only_left"),
    "column-not-created": ("table", "columns", "changed"),
    "key-type": ("column", "type", "changed"),
    "column-type": ("column", "type", "changed"),
    "fk-type": ("column", "type", "changed"),
    "default-type": ("column", "default", "changed"),
    "value-type": ("column", "value", "changed"),
    "enum-labels": ("enum", "labels", "changed"),
}


def _legacy_finding(finding: Finding, message: str, side: str, root: Path) -> ReportFinding:
    """A ``legacy_ddl`` finding in the JSON report: the script's statement (left) against what
    ``side`` (``migrations at head`` or ``models``) has (right), at the script's line."""
    kind, attribute, category = _LEGACY_SHAPES.get(finding.code, ("statement", None, "changed"))
    table = None
    if kind == "table":
        table = finding.object
    elif kind == "column":
        table = finding.object.rpartition(".")[0] or None
    return ReportFinding(
        kind=kind,
        object=finding.object,
        attribute=attribute,
        category=category,
        left_label="scripts",
        left=finding.quote,
        right_label=side,
        right=None if category in ("only_left", "unparsed") else finding.schema_fact,
        message=message,
        file=str(root / finding.file) if finding.file else None,
        line=finding.line,
        rule=finding.code,
        statement=finding.quote,
        table=table,
    )


_FOREIGN_KEY_NAMES = (
    "SELECT coalesce(json_agg(n.nspname || '.' || c.relname || '.' || con.conname), '[]')::text "
    "FROM pg_catalog.pg_constraint con "
    "JOIN pg_catalog.pg_class c ON c.oid = con.conrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE con.contype = 'f'"
)
_READS_ONLY = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "SHOW", "SET", "BEGIN", "COMMIT"}
)


def _foreign_key_names(conn: Connection) -> list[str]:
    """The foreign keys of the database (``schema.table.name``), read on the DBAPI connection
    under ``conn`` (no SQLAlchemy events, one text value: the same on every driver)."""
    from pytest_schemaguard.dbapi import read_json

    names: list[str] = read_json(conn, _FOREIGN_KEY_NAMES) or []
    return names


def _foreign_key_origins(parity: ParityChecks) -> dict[str, tuple[str, int | None]]:
    """``schema.table.name`` -> (the revision whose upgrade created the foreign key, the line of
    its file that sent the statement; None when it was not sent from the file).

    A pass to head of its own (a new scratch database, dropped at the end): after each
    statement sent from a revision file (but plain data access) the foreign keys' names are
    read, and a new one is the statement's; after each step, those created otherwise are the
    revision's.  Foreign keys already in the template (a bootstrapped schema) have none.
    Raises :class:`MigrationFailed` as :func:`migrate_to` does.
    """
    history = parity.history
    script = parity.project.script
    files: dict[str, str] = {}
    for rev in history.revisions:
        sc = script.get_revision(rev)
        if sc is not None and sc.path:
            files[os.path.realpath(sc.path)] = rev
    origins: dict[str, tuple[str, int | None]] = {}
    known: set[str] = set()
    seen: dict[str, str | None] = {}
    caller: list[tuple[str, int] | None] = [None]
    listening: list[Connection] = []

    def sender() -> tuple[str, int] | None:
        frame: Any = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename
            if name not in seen:
                seen[name] = files.get(os.path.realpath(name))
            rev = seen[name]
            if rev is not None:
                return rev, int(frame.f_lineno)
            frame = frame.f_back
        return None

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split(None, 1)
        first = words[0].lstrip("(").upper() if words else ""
        caller[0] = None if first in _READS_ONLY else sender()

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        where, caller[0] = caller[0], None
        if where is not None:
            note(conn, where)

    def note(conn: Connection, where: tuple[str, int | None] | None) -> None:
        for name in _foreign_key_names(conn):
            if name not in known:
                known.add(name)
                if where is not None:
                    origins[name] = where

    def observe(conn: Connection, rev: str | None) -> None:
        from sqlalchemy import event

        if rev is None:
            note(conn, None)  # the template's
            event.listen(conn, "before_cursor_execute", before)
            event.listen(conn, "after_cursor_execute", after)
            listening.append(conn)
        else:
            note(conn, (rev, None))

    from pytest_schemaguard.parity.migrated import migrate_to

    try:
        migrated = migrate_to(
            parity.project,
            history,
            parity.server,
            parity.config_factory,
            "head",
            template=parity.template(),
            skip=parity.skip,
            observe=observe,
        )
    finally:
        from sqlalchemy import event

        for conn in listening:
            for name, fn in (("before_cursor_execute", before), ("after_cursor_execute", after)):
                if event.contains(conn, name, fn):
                    event.remove(conn, name, fn)
    parity.server.drop_database(migrated.database)
    return origins


@pytest.fixture(scope="session")
def schemaguard_legacy(
    request: pytest.FixtureRequest, schemaguard_settings: Settings, schemaguard_parity: Any
) -> Iterator[LegacyChecks]:
    """The legacy DDL analysis and fk_types check of this session."""
    checks = LegacyChecks(schemaguard_settings, schemaguard_parity)
    request.config.stash[LEGACY_KEY] = checks
    yield checks


def pytest_sessionfinish(session: pytest.Session) -> None:
    checks = session.config.stash.get(LEGACY_KEY, None)
    if checks is not None:
        # under xdist, the controller prints the summary the workers made
        schemaguard_items.relay_to_controller(
            session.config, "legacy_summary", checks.summary_lines()
        )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    blocks: list[tuple[str, ...]] = []
    checks = config.stash.get(LEGACY_KEY, None)
    if checks is not None:
        blocks.append(tuple(checks.summary_lines()))
    blocks += [tuple(lines) for lines in schemaguard_items.relayed(config, "legacy_summary")]
    # every worker analyses all the scripts, so their summaries are the same: print it once
    printed: set[tuple[str, ...]] = set()
    for block in blocks:
        if block and block not in printed:
            printed.add(block)
            for line in block:
                terminalreporter.write_line(line)
