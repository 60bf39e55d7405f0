"""The safety rules: their stable names, what each risks, and the safe pattern in Alembic.

This module does not import pytest.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RULES", "Finding", "Rule"]


@dataclass(frozen=True)
class Rule:
    name: str
    summary: str
    """What the rule reports, in one line (the docs and ``--help`` use it)."""


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "table-rewrite",
            "a table that existed at the parent was rewritten (new relfilenode), or one of its "
            "indexes rebuilt",
        ),
        Rule(
            "blocking-index-build",
            "an index was built on an existing table inside a transaction (SHARE lock: writes "
            "wait for the whole build)",
        ),
        Rule(
            "validating-constraint",
            "a constraint or NOT NULL was validated by scanning an existing table while writes "
            "to it were blocked",
        ),
        Rule(
            "access-exclusive",
            "a rename or drop on an existing table took ACCESS EXCLUSIVE with no lock_timeout",
        ),
        Rule(
            "no-lock-timeout",
            "the revision took ACCESS EXCLUSIVE on an existing table with no lock_timeout set",
        ),
        Rule(
            "destructive",
            "a table or column that existed at the parent was dropped (its data is gone)",
        ),
        Rule(
            "backward-incompatible",
            "code of the previous release breaks: a table, view or column it uses was renamed "
            "or dropped, or a column it writes became NOT NULL without a default",
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    """One measured fact about one statement of a revision's upgrade."""

    rule: str
    revision: str
    statement: str
    """The statement, on one line (shortened when long)."""
    fact: str
    """What was measured, e.g. ``rewrote table orders (new relfilenode) holding ACCESS
    EXCLUSIVE``."""
    advice: str
    """The safe alternative."""
    line: int | None = None
    """The line of the revision file that sent the statement (None: not sent from it, e.g.
    by env.py)."""
    table: str | None = None
    """The existing table (or view) it is about, qualified as it was at the parent
    (``public.orders``)."""
    lock: str | None = None
    """The strongest lock held on :attr:`table` after the statement (``ACCESS EXCLUSIVE``;
    None outside a transaction)."""
    rewrite: bool = False
    """Whether the statement rewrote :attr:`table` or rebuilt one of its indexes."""

    def render(self, described: str, path: str) -> str:
        """``revision 4c1d2e (add status), versions/4c1d2e_add_status.py:21: ALTER TABLE ...
        rewrote table orders (new relfilenode) holding ACCESS EXCLUSIVE; on a large table, ...``
        followed by the rule name in brackets."""
        where = f"{path}:{self.line}" if self.line is not None else path
        return (
            f"revision {described}, {where}: {self.statement} {self.fact}; {self.advice} "
            f"[{self.rule}]"
        )
