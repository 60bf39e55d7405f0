"""The defect catalogue: every entry applies by name to a fresh copy of its clean project."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import pytest
from defects import (
    CHECKS,
    DEFECTS,
    FIXTURES_DIR,
    Defect,
    DefectError,
    apply_defect,
    copy_project,
)


def changed_files(clean: Path, mutated: Path) -> list[str]:
    """Files (relative paths) that differ between two project trees, or exist in one only."""
    changed: list[str] = []

    def walk(comparison: filecmp.dircmp[str], prefix: str) -> None:
        changed.extend(prefix + name for name in comparison.left_only + comparison.right_only)
        changed.extend(prefix + name for name in comparison.diff_files)
        for name, sub in comparison.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(clean, mutated, ignore=["__pycache__"]), "")
    return sorted(changed)


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_applies_to_a_fresh_copy(name: str, tmp_path: Path) -> None:
    defect = DEFECTS[name]
    project_dir = copy_project(defect.project, tmp_path)

    applied = apply_defect(name, project_dir)

    assert applied is defect
    assert changed_files(FIXTURES_DIR / defect.project, project_dir), "nothing changed"
    # The clean project itself is untouched.
    assert not changed_files(
        FIXTURES_DIR / defect.project, copy_project(defect.project, tmp_path / "again")
    )


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_defect_describes_what_must_report_it(name: str) -> None:
    defect = DEFECTS[name]
    assert defect.name == name
    assert (FIXTURES_DIR / defect.project / "pyproject.toml").is_file()
    assert defect.check in CHECKS
    assert re.fullmatch(r"[0-9a-f]{12}", defect.revision or "0" * 12)
    assert defect.object and defect.description and defect.mentions
    if defect.revision is not None:
        revision_files = list(
            (FIXTURES_DIR / defect.project).rglob(f"versions/{defect.revision}_*.py")
        )
        assert len(revision_files) == 1, f"no revision {defect.revision} in {defect.project}"


def test_a_defect_applies_once_only(tmp_path: Path) -> None:
    project_dir = copy_project("newsbot", tmp_path)
    apply_defect("downgrade_keeps_index", project_dir)
    with pytest.raises(DefectError, match="ix_articles_published_at"):
        apply_defect("downgrade_keeps_index", project_dir)


def test_a_defect_refuses_another_project(tmp_path: Path) -> None:
    project_dir = copy_project("newsbot", tmp_path)
    with pytest.raises(DefectError, match="timetracker"):
        apply_defect("downgrade_keeps_trigger", project_dir)
    assert not changed_files(FIXTURES_DIR / "newsbot", project_dir)


def test_unknown_defect_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DefectError, match="downgrade_keeps_index"):
        apply_defect("no_such_defect", tmp_path)


def test_the_catalogue_document_lists_every_defect() -> None:
    readme = (FIXTURES_DIR / "README.md").read_text()
    rows = {
        cells[0].strip("` "): cells
        for cells in (
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in readme.splitlines()
            if line.startswith("| `")
        )
    }
    assert set(DEFECTS) <= set(rows), f"undocumented: {sorted(set(DEFECTS) - set(rows))}"
    for name, defect in DEFECTS.items():
        documented = " ".join(rows[name])
        for fact in (defect.project, defect.check, defect.revision or "—"):
            assert fact in documented, f"{name}: README row does not say {fact!r}"


def test_unparseable_statement_position_is_the_documented_one(tmp_path: Path) -> None:
    defect: Defect = DEFECTS["legacy_unparseable_statement"]
    project_dir = copy_project(defect.project, tmp_path)
    apply_defect(defect.name, project_dir)
    relative, line = defect.object.split()[-1].rsplit(":", 1)
    lines = (project_dir / relative).read_text().splitlines()
    assert lines[int(line) - 1].startswith("CLUSTER ")
    # it is not the last statement: the one after it has a finding of its own (stopped_at)
    after = "\n".join(lines[int(line) :])
    assert after.lstrip().startswith("CREATE UNIQUE INDEX ")
    assert "WHERE stopped_at IS NULL;" in after
