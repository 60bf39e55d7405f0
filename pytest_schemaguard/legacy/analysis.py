"""Read legacy SQL files into a :class:`LegacyAnalysis`: statements, picture, what was skipped.

Files are streamed statement by statement (:func:`pytest_schemaguard.sqltext.iter_file`): each
statement is parsed, applied to the picture and dropped, so memory follows the largest
statement and what the picture records, not the size of the files. What a report needs of a
statement (its location and one-line quote) is kept; its text and parse tree are not.
"""

from __future__ import annotations

import dataclasses
import glob
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_schemaguard.legacy.parse import ParsedStatement, parse_statement
from pytest_schemaguard.legacy.picture import NotAnalysed, Picture, PictureBuilder
from pytest_schemaguard.sqltext import (
    DecodeProblem,
    Item,
    MetaCommand,
    Statement,
    iter_file,
    iter_sql,
    relative_name,
)

__all__ = ["LegacyAnalysis", "analyse_files", "analyse_sql", "expand_globs"]


@dataclass(frozen=True)
class LegacyAnalysis:
    """The result of reading the scripts, before any comparison with a schema."""

    files: tuple[str, ...]
    """The files read, in order, relative to the root (forward slashes)."""
    counts: Mapping[str, int]
    """Statements per status (``analysed``, ``irrelevant``, ``not_analysed``, ``error``)."""
    parse_errors: tuple[ParsedStatement, ...]
    """The statements that do not parse (their statements slimmed to location and quote)."""
    meta_commands: tuple[MetaCommand, ...]
    not_analysed: tuple[NotAnalysed, ...]
    """Opaque statements (one entry each) and parts of analysed statements that were skipped."""
    decode_problems: tuple[DecodeProblem, ...] = ()
    """Per file, the first line that is not valid UTF-8 (read with replacement characters)."""
    picture: Picture = field(default_factory=Picture, compare=False, repr=False)

    @property
    def statement_count(self) -> int:
        return sum(self.counts.values())

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    def summary(self) -> str:
        """``12 statements: 9 analysed, 1 irrelevant, 2 not analysed, 0 parse errors``."""
        total = self.statement_count
        return (
            f"{total} statement{'s' if total != 1 else ''}: "
            f"{self.count('analysed')} analysed, {self.count('irrelevant')} irrelevant, "
            f"{self.count('not_analysed')} not analysed, {self.count('error')} "
            f"parse error{'s' if self.count('error') != 1 else ''}"
        )


def _analyse(sources: Iterable[tuple[str, Iterable[Item]]]) -> LegacyAnalysis:
    files: list[str] = []
    counts: Counter[str] = Counter()
    errors: list[ParsedStatement] = []
    metas: list[MetaCommand] = []
    decode: list[DecodeProblem] = []
    opaque: list[NotAnalysed] = []
    builder = PictureBuilder()
    for name, items in sources:
        files.append(name)
        for item in items:
            if isinstance(item, MetaCommand):
                metas.append(item)
            elif isinstance(item, DecodeProblem):
                decode.append(item)
            else:
                _one(item, builder, counts, errors, opaque)
    order = {name: i for i, name in enumerate(files)}
    not_analysed = sorted(
        [*opaque, *builder.not_analysed],
        key=lambda n: (order.get(n.statement.file, 0), n.statement.line, n.statement.column),
    )
    return LegacyAnalysis(
        files=tuple(files),
        counts=dict(counts),
        parse_errors=tuple(errors),
        meta_commands=tuple(metas),
        not_analysed=tuple(not_analysed),
        decode_problems=tuple(decode),
        picture=builder.picture,
    )


def _one(
    statement: Statement,
    builder: PictureBuilder,
    counts: Counter[str],
    errors: list[ParsedStatement],
    opaque: list[NotAnalysed],
) -> None:
    parsed = parse_statement(statement)
    slim = statement.slim()
    if parsed.status == "analysed":
        reason = builder.apply(parsed, slim)
        if reason is not None:
            parsed = dataclasses.replace(parsed, status="not_analysed", reason=reason)
    counts[parsed.status] += 1
    if parsed.status == "error":
        errors.append(dataclasses.replace(parsed, statement=slim, expression=None))
    elif parsed.status == "not_analysed":
        opaque.append(NotAnalysed(slim, parsed.reason or "not analysed"))


def analyse_files(paths: Sequence[Path], *, root: Path) -> LegacyAnalysis:
    """Split, parse and apply the files in the given order (later files see earlier ones)."""
    named = [(relative_name(path, root), path) for path in paths]
    return _analyse((name, iter_file(path, file=name)) for name, path in named)


def analyse_sql(text: str, *, file: str = "<string>") -> LegacyAnalysis:
    """Analyse SQL given as text (one file's worth)."""
    return _analyse([(file, iter_sql(text.splitlines(keepends=True), file=file))])


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
