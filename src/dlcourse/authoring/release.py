"""`course release`: regenerate assignments/ from solutions/, or prove it is current."""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from pathlib import Path

from dlcourse.authoring.references import write_hidden_blocks
from dlcourse.errors import CourseError
from dlcourse.runner import nbgrader_api
from dlcourse.runner.course import Course
from dlcourse.runner.notebooks import find_leaks


def build_release(course: Course, assignment: str, dest: Path) -> Path:
    """Generate the student version of one assignment into ``dest/<assignment>``."""
    course.require_assignment(assignment)
    with tempfile.TemporaryDirectory(prefix="dlcourse-release-") as tmp:
        nbgrader_api.generate_assignment(
            course, assignment, release_dir=dest, db_url=f"sqlite:///{tmp}/gradebook.db"
        )
    folder = dest / assignment
    leaks = find_leaks(folder)
    if leaks:
        raise CourseError(f"release of {assignment} leaks: {'; '.join(leaks)}")
    return folder


def _differences(expected: Path, actual: Path) -> list[str]:
    """Relative paths that differ between two folders (missing, extra or changed)."""
    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()

    want, have = files(expected), files(actual)
    diffs = [f"missing {name}" for name in sorted(want - have)]
    diffs += [f"unexpected {name}" for name in sorted(have - want)]
    diffs += [
        f"outdated {name}" for name in sorted(want & have)
        if not filecmp.cmp(expected / name, actual / name, shallow=False)
    ]
    return diffs


def release(course: Course, assignments: list[str] | None = None, check: bool = False) -> dict[str, list[str]]:
    """Regenerate (or with ``check``, compare) assignments/; returns differences per assignment.

    With ``check`` a non-empty result means assignments/ is out of date; without
    it the differences are what was just rewritten.
    """
    ids = assignments or course.assignment_ids()
    if not ids:
        raise CourseError(f"no assignments found in {course.solutions}")
    report: dict[str, list[str]] = {}
    # The hidden blocks come from each practical's spec: written into the source first.
    for assignment in ids:
        cells = write_hidden_blocks(course, assignment, check=check)
        verb = "not written from the spec" if check else "written from the spec"
        report[assignment] = [f"hidden block of {cell} {verb}" for cell in cells]
    with tempfile.TemporaryDirectory(prefix="dlcourse-release-out-") as tmp:
        for assignment in ids:
            fresh = build_release(course, assignment, Path(tmp))
            target = course.assignments / assignment
            differences = _differences(fresh, target)
            report[assignment] += differences
            if not check and differences:
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(fresh, target)
        if not assignments:
            stale = sorted(
                p.name for p in course.assignments.glob("*") if p.is_dir() and p.name not in ids
            ) if course.assignments.is_dir() else []
            for name in stale:
                report[name] = ["no source in solutions/ (stale release)"]
                if not check:
                    shutil.rmtree(course.assignments / name)
    return report
