"""Read legacy SQL files into a :class:`LegacyAnalysis`: statements, picture, what was skipped."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_schemaguard.legacy.parse import ParsedStatement, parse_statement
from pytest_schemaguard.legacy.picture import NotAnalysed, Picture, build_picture
from pytest_schemaguard.legacy.split import MetaCommand, SplitResult, split_file, split_sql

__all__ = ["LegacyAnalysis", "analyse_files", "analyse_sql", "expand_globs"]


@dataclass(frozen=True)
class LegacyAnalysis:
    """The result of reading the scripts, before any comparison with a schema."""

    files: tuple[str, ...]
    """The files read, in order, relative to the root (forward slashes)."""
    statements: tuple[ParsedStatement, ...]
    meta_commands: tuple[MetaCommand, ...]
    not_analysed: tuple[NotAnalysed, ...]
    """Opaque statements (one entry each) and parts of analysed statements that were skipped."""
    picture: Picture = field(compare=False, repr=False)

    @property
    def parse_errors(self) -> tuple[ParsedStatement, ...]:
        return tuple(s for s in self.statements if s.status == "error")

    def count(self, status: str) -> int:
        return sum(1 for s in self.statements if s.status == status)

    def summary(self) -> str:
        """``12 statements: 9 analysed, 1 irrelevant, 2 not analysed, 0 parse errors``."""
        total = len(self.statements)
        return (
            f"{total} statement{'s' if total != 1 else ''}: "
            f"{self.count('analysed')} analysed, {self.count('irrelevant')} irrelevant, "
            f"{self.count('not_analysed')} not analysed, {self.count('error')} "
            f"parse error{'s' if self.count('error') != 1 else ''}"
        )


def _analyse(results: Iterable[SplitResult]) -> LegacyAnalysis:
    files: list[str] = []
    parsed: list[ParsedStatement] = []
    metas: list[MetaCommand] = []
    for result in results:
        files.append(result.file)
        metas.extend(result.meta_commands)
        parsed.extend(parse_statement(s) for s in result.statements)
    picture, partial = build_picture(parsed)
    opaque = [
        NotAnalysed(p.statement, p.reason or "not analysed")
        for p in parsed
        if p.status == "not_analysed"
    ]
    not_analysed = sorted(
        [*opaque, *partial],
        key=lambda n: (files.index(n.statement.file), n.statement.line, n.statement.column),
    )
    return LegacyAnalysis(
        files=tuple(files),
        statements=tuple(parsed),
        meta_commands=tuple(metas),
        not_analysed=tuple(not_analysed),
        picture=picture,
    )


def analyse_files(paths: Sequence[Path], *, root: Path) -> LegacyAnalysis:
    """Split, parse and apply the files in the given order (later files see earlier ones)."""
    return _analyse(split_file(path, root=root) for path in paths)


def analyse_sql(text: str, *, file: str = "<string>") -> LegacyAnalysis:
    """Analyse SQL given as text (one file's worth)."""
    return _analyse([split_sql(text, file=file)])


def expand_globs(patterns: Sequence[str], *, root: Path) -> list[Path]:
    """The files matched by ``patterns`` (relative to ``root``), in pattern order, each sorted
    by name within its pattern, without duplicates."""
    found: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        base = pattern if Path(pattern).is_absolute() else str(root / pattern)
        for match in sorted(glob.glob(base, recursive=True)):
            path = Path(match)
            if path.is_file() and path.resolve() not in seen:
                seen.add(path.resolve())
                found.append(path)
    return found
