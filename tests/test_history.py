"""The revision history as plain data (no database, no Alembic)."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_schemaguard.migrations.history import (
    History,
    RevisionInfo,
    analyse_downgrade,
    downgrade_line,
    slugify,
)


def rev(revision: str, *down: str, message: str = "", downgrade: str = "ok") -> RevisionInfo:
    return RevisionInfo(
        revision=revision,
        down_revisions=down,
        message=message or revision,
        path=f"versions/{revision}.py",
        downgrade=downgrade,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def upgrade():\n    pass\n\ndef downgrade():\n    pass\n", "empty"),
        ('def downgrade():\n    """Nothing."""\n    ...\n', "empty"),
        ("def downgrade() -> None:\n    op.drop_table('t')\n", "ok"),
        ("def downgrade():\n    # a comment only\n    pass\n", "empty"),
        ("def upgrade():\n    pass\n", "missing"),
        ("def downgrade(:\n", "unknown"),
        ("def downgrade():\n    raise NotImplementedError\n", "ok"),
    ],
)
def test_analyse_downgrade(source: str, expected: str) -> None:
    assert analyse_downgrade(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def upgrade():\n    pass\n\ndef downgrade():\n    pass\n", 4),
        ("def downgrade():\n    op.drop_table('a')\n\n\ndef downgrade():\n    pass\n", 5),
        ("def upgrade():\n    pass\n", None),
        ("def downgrade(:\n", None),
    ],
)
def test_downgrade_line_is_the_last_definition(source: str, expected: int | None) -> None:
    assert downgrade_line(source) == expected


def test_slugify() -> None:
    assert slugify("Add status (orders)") == "add_status_orders"
    assert slugify("x" * 60) == "x" * 40
    assert slugify("") == ""


def test_linear_history_order_heads_and_labels() -> None:
    h = History.build([rev("c3", "b2"), rev("a1"), rev("b2", "a1", message="Add status")])
    assert h.order == ("a1", "b2", "c3")
    assert h.heads == ("c3",) and h.bases == ("a1",)
    assert h.label("b2") == "b2-add_status"
    assert h.describe("b2") == "b2 (Add status)"
    assert h.ancestors("c3") == {"a1", "b2"}
    assert h.descendants("a1") == {"b2", "c3"}
    assert h.problems() == []


def test_long_revision_ids_are_shortened_uniquely() -> None:
    long_a = "3f2a9c1b7d40aa11bb22"
    long_b = "3f2a9c1b7d40cc33dd44"
    h = History.build([rev(long_a), rev(long_b, long_a)])
    assert h.short(long_a) == "3f2a9c1b7d40a"
    assert h.short(long_b) == "3f2a9c1b7d40c"
    assert h.resolve("3f2a9c1b7d40c") == long_b
    assert h.resolve("3f2a") is None  # ambiguous


def test_branches_and_merge() -> None:
    h = History.build([rev("a"), rev("b", "a"), rev("c", "a"), rev("m", "b", "c")])
    assert h.branch_points == ("a",)
    assert h.is_merge("m")
    assert h.order.index("m") == 3
    assert h.heads == ("m",)
    assert h.problems() == []
    h2 = History.build([rev("a"), rev("b", "a"), rev("c", "a")])
    [problem] = h2.problems()
    assert problem.kind == "heads"
    assert "2 head(s) (b (b), c (c)), expected 1" in problem.message
    assert "alembic merge heads" in problem.message
    assert h2.problems(heads=2) == []


def test_ancestors_among_and_descendants_follow_parents_and_depends_on() -> None:
    """Asked for every revision in turn (as the checks do for failed upgrades), the answers are
    those of walking each revision's ancestors."""
    revisions = [
        rev("a"),
        rev("b", "a"),
        rev("c", "a"),
        rev("m", "b", "c"),
        dataclasses.replace(rev("x"), depends_on=("b",)),  # another base, depending on b
        rev("y", "x"),
        rev("z", "m"),
    ]
    h = History.build(revisions)
    for asked in (set(), {"b"}, {"c", "x"}, {"a", "y", "z"}, {"gone", "c"}):
        for r in h.order:
            naive = [o for o in h.order if o in asked and o in h.ancestors(r)]
            assert h.ancestors_among(r, asked) == naive, (r, asked)
    for r in h.order:
        assert h.descendants(r) == {o for o in h.order if r in h.ancestors(o)}
    assert h.ancestors_among("y", {"c", "b", "a"}) == ["a", "b"]
    assert h.descendants("b") == {"m", "x", "y", "z"}
    assert h.children("a") == ("b", "c")
    assert h.ordered(["z", "a", "gone", "a"]) == ["a", "z"]


def test_missing_duplicate_and_cyclic_revisions() -> None:
    h = History.build(
        [rev("a"), rev("b", "gone"), RevisionInfo("a", (), path="versions/a_copy.py")]
    )
    kinds = [p.kind for p in h.problems(heads=2)]
    assert kinds == ["duplicate_revision", "missing_parent"]
    assert not h.sound
    messages = "\n".join(p.message for p in h.problems(heads=2))
    assert "revision id a is defined by 2 files: versions/a.py, versions/a_copy.py" in messages
    assert "revision b (versions/b.py) has down_revision 'gone'" in messages

    cyclic = History.build([rev("a", "b"), rev("b", "a")])
    assert cyclic.cyclic == ("a", "b")
    assert [p.kind for p in cyclic.problems()] == ["cycle"]

    doubled = History.build([rev("a"), rev("b", "a", "a")])
    assert [p.kind for p in doubled.problems()] == ["duplicate_parent"]


def test_missing_downgrades_unless_irreversible_or_before_start() -> None:
    infos = [
        rev("a", downgrade="missing"),
        rev("b", "a", downgrade="empty"),
        rev("c", "b", downgrade="missing"),
    ]
    h = History.build(infos)
    # an empty downgrade() is no structural problem: the roundtrip of a revision whose upgrade
    # changes the schema reports it (a merge point, an empty or a data-only revision is fine)
    assert [(p.kind, p.revision) for p in h.problems()] == [
        ("missing_downgrade", "a"),
        ("missing_downgrade", "c"),
    ]
    assert h.problems()[1].message == (
        "versions/c.py (c (c)) has no downgrade() function; write it, or list the revision "
        "in irreversible"
    )
    assert [p.revision for p in h.problems(irreversible=["c"])] == ["a"]
    assert [p.revision for p in h.problems(start="b", irreversible=["c"])] == []
    [unknown] = h.problems(irreversible=["a", "b", "c", "zz"])
    assert unknown.message == "irreversible lists 'zz', which is no revision"
    assert h.empty_downgrade_message("b") == (
        "downgrade() of b (b) in versions/b.py does nothing (only pass/docstring), but its "
        "upgrade changes the schema; write it, or list the revision in irreversible"
    )


def test_an_empty_history_has_no_head() -> None:
    h = History.build([])
    assert h.heads == () and h.order == ()
    assert h.problems(heads=0) == []
    [problem] = History.build([rev("a")]).problems(heads=0)
    assert (
        problem.message == "1 head(s) (a (a)), expected 0: the history is not empty: set heads = 1"
    )
