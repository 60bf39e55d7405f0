"""The revision history as plain data: order, parents, heads, and what is wrong with it.

Nothing here talks to Alembic or a database.  :mod:`.alembic_driver` reads the revision files
into :class:`RevisionInfo` records (tolerating broken histories: duplicated ids, missing
parents), and :class:`History` answers every question the checks and the runner ask.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ALL_REVISIONS",
    "DowngradeKind",
    "History",
    "HistoryProblem",
    "RevisionInfo",
    "analyse_downgrade",
    "downgrade_line",
    "read_downgrade",
    "read_functions",
    "slugify",
]

DowngradeKind = Literal["ok", "empty", "missing", "unknown"]
"""What a revision's ``downgrade()`` looks like: real code, only ``pass``/docstring/``...``,
no ``downgrade`` function at all, or the file could not be parsed."""


ALL_REVISIONS = "*"
"""``irreversible = ["*"]``: every revision is upgraded and never downgraded (a project whose
migrations only go forward)."""


def analyse_downgrade(source: str) -> DowngradeKind:
    """Classify the module-level ``downgrade`` function of a revision file's source."""
    return read_downgrade(source)[0]


def downgrade_line(source: str) -> int | None:
    """The line (1-based) of the module-level ``def downgrade`` of a revision file's source
    (the last definition, as at import time); None when there is none or the file does not
    parse.  Failures of a round trip point there: that is where the fix goes."""
    return read_downgrade(source)[1]


def read_downgrade(source: str) -> tuple[DowngradeKind, int | None]:
    """:func:`analyse_downgrade` and :func:`downgrade_line` of a source, parsed once."""
    return read_functions(source)["downgrade"]


def read_functions(source: str) -> dict[str, tuple[DowngradeKind, int | None]]:
    """What the module-level ``upgrade`` and ``downgrade`` functions of a revision file's
    source do ("empty": only ``pass`` or a docstring), and the line each starts on; the
    source is parsed once."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {name: ("unknown", None) for name in ("upgrade", "downgrade")}
    return {name: _function_facts(tree, name) for name in ("upgrade", "downgrade")}


def _function_facts(tree: ast.Module, name: str) -> tuple[DowngradeKind, int | None]:
    func: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            func = node  # the last definition wins, as at import time
    if func is None:
        return "missing", None
    for stmt in func.body:
        if isinstance(stmt, ast.Pass):
            continue
        if (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and (isinstance(stmt.value.value, str) or stmt.value.value is Ellipsis)
        ):
            continue
        return "ok", func.lineno
    return "empty", func.lineno


_NON_WORD = re.compile(r"[^0-9a-z]+")


def slugify(text: str, *, limit: int = 40) -> str:
    """``"Add status (orders)"`` -> ``"add_status_orders"``, at most ``limit`` characters."""
    slug = _NON_WORD.sub("_", text.lower()).strip("_")
    if len(slug) > limit:
        slug = slug[:limit].rstrip("_")
    return slug


@dataclass(frozen=True)
class RevisionInfo:
    """One revision file, as read (before any validation)."""

    revision: str
    down_revisions: tuple[str, ...] = ()
    """The versioned parents (``down_revision``); several for a merge, none for a base."""
    depends_on: tuple[str, ...] = ()
    branch_labels: tuple[str, ...] = ()
    message: str = ""
    """The first line of the revision's docstring (Alembic's ``doc``)."""
    path: str = ""
    """Path of the revision file (as given by the driver; shown in messages)."""
    downgrade: DowngradeKind = "ok"
    downgrade_line: int | None = None
    """The line of ``def downgrade`` in the file (None when unknown)."""
    upgrade: DowngradeKind = "ok"
    """What ``upgrade()`` does: "empty" for a revision that only marks a point of the history
    (only ``pass`` or a docstring), as a base revision for a schema made before Alembic."""

    @property
    def downgrade_place(self) -> str:
        """``versions/3f2a9c_add_status.py:31``: where the ``downgrade()`` is written (the
        file alone when its line is unknown)."""
        return f"{self.path}:{self.downgrade_line}" if self.downgrade_line else self.path


@dataclass(frozen=True)
class HistoryProblem:
    """One thing wrong with the history; ``revision`` is None for whole-history problems."""

    kind: Literal[
        "heads",
        "missing_parent",
        "duplicate_revision",
        "duplicate_parent",
        "cycle",
        "missing_downgrade",
        "unknown_revision",
    ]
    message: str
    revision: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class History:
    """A validated view of a list of revisions.

    Build it with :meth:`History.build`.  ``order`` is a topological order (parents and
    ``depends_on`` first), deterministic for a given set of files.
    """

    revisions: dict[str, RevisionInfo]
    order: tuple[str, ...]
    duplicates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Revision ids defined by more than one file: id -> the paths."""
    cyclic: tuple[str, ...] = ()
    """Revisions on (or behind) a cycle; they have no place in ``order``."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, infos: Iterable[RevisionInfo]) -> History:
        revisions: dict[str, RevisionInfo] = {}
        paths: dict[str, list[str]] = {}
        for info in infos:
            paths.setdefault(info.revision, []).append(info.path)
            revisions[info.revision] = info  # the last one wins, as in Alembic
        duplicates = {rev: tuple(p) for rev, p in paths.items() if len(p) > 1}

        # Kahn's algorithm; ties broken by file path, then id, for a stable order.
        def edges(info: RevisionInfo) -> set[str]:
            return {r for r in (*info.down_revisions, *info.depends_on) if r in revisions}

        pending = {rev: edges(info) for rev, info in revisions.items()}
        children: dict[str, list[str]] = {rev: [] for rev in revisions}
        for rev, parents in pending.items():
            for parent in parents:
                children[parent].append(rev)

        def key(rev: str) -> tuple[str, str]:
            return (revisions[rev].path, rev)

        ready = sorted((r for r, p in pending.items() if not p), key=key)
        order: list[str] = []
        while ready:
            rev = ready.pop(0)
            order.append(rev)
            for child in children[rev]:
                pending[child].discard(rev)
                if not pending[child]:
                    ready.append(child)
            ready.sort(key=key)
        placed = set(order)
        cyclic = tuple(sorted(r for r in revisions if r not in placed))
        return cls(revisions=revisions, order=tuple(order), duplicates=duplicates, cyclic=cyclic)

    # ------------------------------------------------------------------ structure
    def __contains__(self, rev: object) -> bool:
        return rev in self.revisions

    def info(self, rev: str) -> RevisionInfo:
        return self.revisions[rev]

    def parents(self, rev: str) -> tuple[str, ...]:
        return self.revisions[rev].down_revisions

    def requirements(self, rev: str) -> tuple[str, ...]:
        """Revisions that must be applied before ``rev``: parents and ``depends_on``."""
        info = self.revisions[rev]
        return tuple(r for r in (*info.down_revisions, *info.depends_on) if r in self.revisions)

    def children(self, rev: str) -> tuple[str, ...]:
        return self._children.get(rev, ())

    @functools.cached_property
    def _children(self) -> dict[str, tuple[str, ...]]:
        return _inverted(self.order, lambda r: self.revisions[r].down_revisions)

    @property
    def heads(self) -> tuple[str, ...]:
        """Revisions that are nobody's parent, in ``order``."""
        parents = {p for info in self.revisions.values() for p in info.down_revisions}
        return tuple(r for r in self.order if r not in parents)

    @property
    def bases(self) -> tuple[str, ...]:
        return tuple(r for r in self.order if not self.revisions[r].down_revisions)

    def is_merge(self, rev: str) -> bool:
        return len(self.revisions[rev].down_revisions) > 1

    @property
    def branch_points(self) -> tuple[str, ...]:
        return tuple(r for r in self.order if len(self.children(r)) > 1)

    def ancestors(self, rev: str) -> set[str]:
        """Everything that must be applied before ``rev`` (transitively), excluding ``rev``."""
        return _reachable(rev, self.requirements)

    def descendants(self, rev: str) -> set[str]:
        """Everything that needs ``rev`` (transitively), excluding ``rev``."""
        return {r for r in self._descendants(rev) if r in self._position}

    def ancestors_among(self, rev: str, revs: Iterable[str]) -> list[str]:
        """Those of ``revs`` that must be applied before ``rev`` (its ancestors), in ``order``.

        Cheap when asked for every revision in turn: each of ``revs`` finds what needs it once
        (``ancestors`` would walk the history back from each revision asked about)."""
        return [r for r in self.ordered(revs) if rev in self._descendants(r)]

    def _descendants(self, rev: str) -> frozenset[str]:
        cache = self._descendants_cache
        found = cache.get(rev)
        if found is None:
            dependents = self._dependents
            found = cache[rev] = frozenset(_reachable(rev, lambda r: dependents.get(r, ())))
        return found

    @functools.cached_property
    def _descendants_cache(self) -> dict[str, frozenset[str]]:
        return {}

    @functools.cached_property
    def _dependents(self) -> dict[str, tuple[str, ...]]:
        """For each revision, those that require it directly (parents and ``depends_on``)."""
        return _inverted(self.revisions, self.requirements)

    def closure(self, revs: Iterable[str]) -> set[str]:
        """``revs`` and all their ancestors."""
        out: set[str] = set()
        for r in revs:
            out.add(r)
            out |= self.ancestors(r)
        return out

    def ordered(self, revs: Iterable[str]) -> list[str]:
        """``revs`` in topological order (those not in it are left out)."""
        position = self._position
        return sorted((r for r in set(revs) if r in position), key=position.__getitem__)

    def comes_after(self, later: str, rev: str) -> bool:
        """Whether ``later`` comes after ``rev`` in ``order`` (both must have a place)."""
        at, after = self._position.get(rev), self._position.get(later)
        return at is not None and after is not None and after > at

    @functools.cached_property
    def _position(self) -> dict[str, int]:
        return {r: i for i, r in enumerate(self.order)}

    @property
    def sound(self) -> bool:
        """True when the history can be migrated at all (no cycle, no missing parent)."""
        return not self.cyclic and not any(
            p not in self.revisions for info in self.revisions.values() for p in info.down_revisions
        )

    @property
    def unsound_reason(self) -> str | None:
        """Why the history cannot be migrated at all, in one line (None when it can)."""
        if self.sound:
            return None
        return next(
            (p.message for p in self.problems() if p.kind in ("missing_parent", "cycle")),
            "the history has a missing parent or a cycle",
        )

    # ------------------------------------------------------------------ names
    def resolve(self, ref: str) -> str | None:
        """A revision id from an exact id or a unique prefix; None when unknown or ambiguous."""
        found = self.matching(ref)
        return found[0] if len(found) == 1 else None

    def matching(self, ref: str) -> list[str]:
        """The revisions ``ref`` names: itself when it is an id, else those it is a prefix
        of."""
        if ref in self.revisions:
            return [ref]
        return [r for r in self.revisions if r.startswith(ref)]

    def short(self, rev: str) -> str:
        """The id as shown in item names: as given up to 12 characters, else a unique prefix."""
        if len(rev) <= 12:
            return rev
        length = 12
        while any(o != rev and o.startswith(rev[:length]) for o in self.revisions):
            length += 1
        return rev[:length]

    def label(self, rev: str) -> str:
        """``<short id>-<message slug>``, e.g. ``3f2a9c-add_status`` (unique in the history)."""
        short = self.short(rev)
        slug = slugify(self.revisions[rev].message)
        if not slug or short.lower().endswith(slug):
            return short
        return f"{short}-{slug}"

    def describe(self, rev: str) -> str:
        """``3f2a9c (add status)`` for messages."""
        message = self.revisions[rev].message
        return f"{self.short(rev)} ({message})" if message else self.short(rev)

    # ------------------------------------------------------------------ validation
    def problems(
        self,
        *,
        heads: int = 1,
        irreversible: Sequence[str] = (),
        start: str | None = None,
    ) -> list[HistoryProblem]:
        """Everything the ``history`` check reports, in a stable order.

        Structural problems only: what needs no database.  An empty ``downgrade()`` is not one
        (a merge point, an empty or a data-only revision may rightly have one); the roundtrip
        of a revision whose upgrade changes the schema reports it.
        """
        out: list[HistoryProblem] = []
        for rev, rev_paths in sorted(self.duplicates.items()):
            out.append(
                HistoryProblem(
                    "duplicate_revision",
                    f"revision id {rev} is defined by {len(rev_paths)} files: "
                    + ", ".join(p or "?" for p in rev_paths),
                    rev,
                )
            )
        for rev in sorted(self.revisions, key=lambda r: (self.revisions[r].path, r)):
            info = self.revisions[rev]
            seen: set[str] = set()
            for parent in info.down_revisions:
                if parent in seen:
                    out.append(
                        HistoryProblem(
                            "duplicate_parent",
                            f"revision {rev} ({info.path}) lists down_revision {parent} twice",
                            rev,
                            info.path,
                        )
                    )
                seen.add(parent)
                if parent not in self.revisions:
                    out.append(
                        HistoryProblem(
                            "missing_parent",
                            f"revision {rev} ({info.path}) has down_revision {parent!r}, "
                            "which no revision file defines",
                            rev,
                            info.path,
                        )
                    )
            for dep in info.depends_on:
                if dep not in self.revisions and not any(
                    dep in i.branch_labels for i in self.revisions.values()
                ):
                    out.append(
                        HistoryProblem(
                            "missing_parent",
                            f"revision {rev} ({info.path}) depends_on {dep!r}, "
                            "which no revision file defines",
                            rev,
                            info.path,
                        )
                    )
        if self.cyclic:
            out.append(
                HistoryProblem(
                    "cycle",
                    "the down_revision links form a cycle through: " + ", ".join(self.cyclic),
                )
            )
        found_heads = self.heads
        if not self.cyclic and len(found_heads) != heads:
            listing = ", ".join(self.describe(h) for h in found_heads) or "none"
            if heads == 0:
                hint = f"the history is not empty: set heads = {len(found_heads)}"
            elif len(found_heads) > heads:
                hint = (
                    "merge them (`alembic merge heads`), or set heads = "
                    f"{len(found_heads)} if the branches are meant to stay apart"
                )
            else:
                hint = f"set heads = {len(found_heads)}"
            out.append(
                HistoryProblem(
                    "heads",
                    f"{len(found_heads)} head(s) ({listing}), expected {heads}: {hint}",
                )
            )

        resolved_irreversible: set[str] = set()
        if ALL_REVISIONS in irreversible:  # every revision only goes forward
            irreversible = ()
            resolved_irreversible = set(self.revisions)
        for ref in irreversible:
            found = self.resolve(ref)
            if found is None:
                out.append(
                    HistoryProblem(
                        "unknown_revision", f"irreversible lists {ref!r}, which is no revision"
                    )
                )
            else:
                resolved_irreversible.add(found)
        skipped: set[str] = set()
        if start is not None:
            start_rev = self.resolve(start)
            if start_rev is None:
                out.append(HistoryProblem("unknown_revision", f"start = {start!r} is no revision"))
            else:
                skipped = self.closure([start_rev])
        checked = [r for r in self.order if r not in resolved_irreversible and r not in skipped]
        # An empty downgrade() is a finding only when the upgrade changes the schema, which
        # only the migration pass can tell: the revision's roundtrip item reports it
        # (see empty_downgrade_message).
        missing = [r for r in checked if self.revisions[r].downgrade == "missing"]
        if len(missing) > 1 and len(missing) == len(checked):
            # a history that only goes forward by policy: one line, not one per revision
            out.append(
                HistoryProblem(
                    "missing_downgrade",
                    f"none of the {len(missing)} revisions has a downgrade() function (a "
                    'history that only goes forward, as OpenStack\'s): irreversible = ["*"] in '
                    "[tool.schemaguard] checks each upgrade and downgrades nothing; or write "
                    "them",
                )
            )
            return out
        for rev in missing:
            info = self.revisions[rev]
            out.append(
                HistoryProblem(
                    "missing_downgrade",
                    f"{info.path} ({self.describe(rev)}) has no downgrade() function; "
                    "write it, or list the revision in irreversible",
                    rev,
                    info.path,
                )
            )
        return out

    def empty_downgrade_message(self, rev: str) -> str:
        """What the roundtrip of ``rev`` says when its ``downgrade()`` is empty although its
        upgrade changes the schema."""
        info = self.revisions[rev]
        return (
            f"downgrade() of {self.describe(rev)} in {info.path} does nothing "
            "(only pass/docstring), but its upgrade changes the schema; write it, or list "
            "the revision in irreversible"
        )


def _inverted(
    revs: Iterable[str], edges: Callable[[str], Iterable[str]]
) -> dict[str, tuple[str, ...]]:
    """For each revision that ``edges`` of ``revs`` name, the revisions naming it (in the order
    of ``revs``)."""
    inverse: dict[str, list[str]] = {}
    for r in revs:
        for named in dict.fromkeys(edges(r)):
            inverse.setdefault(named, []).append(r)
    return {named: tuple(found) for named, found in inverse.items()}


def _reachable(rev: str, edges: Callable[[str], Iterable[str]]) -> set[str]:
    """Every revision reached from ``rev`` by following ``edges`` (``rev`` only when a cycle
    leads back to it)."""
    seen: set[str] = set()
    stack = list(edges(rev))
    while stack:
        r = stack.pop()
        if r not in seen:
            seen.add(r)
            stack.extend(edges(r))
    return seen
