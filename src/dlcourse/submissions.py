"""Bring collected submissions into nbgrader's submitted/ folder."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dlcourse.course import Course
from dlcourse.errors import CourseError

_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")


@dataclass
class ImportReport:
    students: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)


def import_folder(course: Course, assignment: str, source: str | Path) -> ImportReport:
    """Copy ``source/<student>/<files>`` to ``submitted/<student>/<assignment>/``.

    The originals are never modified. A student's only notebook is renamed to
    ``<assignment>.ipynb``; files that cannot be placed are reported.
    """
    source = Path(source)
    if not source.exists():
        raise CourseError(f"--from: {source} does not exist")
    if source.is_file():
        raise CourseError(
            f"--from: {source} is a file; give a folder of <student>/<files> "
            "(unpack an LMS download into one first)"
        )
    report = ImportReport()
    expected = f"{assignment}.ipynb"
    for folder in sorted(p for p in source.iterdir() if not p.name.startswith(".")):
        if not folder.is_dir():
            report.unplaced.append(f"{folder.name}: not inside a student folder")
            continue
        if not _STUDENT_ID.match(folder.name):
            report.unplaced.append(f"{folder.name}/: not a usable student id")
            continue
        files = sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
        notebooks = [p for p in files if p.suffix == ".ipynb"]
        dest = course.submitted / folder.name / assignment
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for path in files:
            rel = path.relative_to(folder)
            target = dest / rel
            if path.suffix == ".ipynb" and path.name != expected:
                if len(notebooks) == 1 and not (folder / expected).exists():
                    target = dest / expected
                    report.renamed.append(f"{folder.name}/{rel} -> {expected}")
                else:
                    report.unplaced.append(f"{folder.name}/{rel}: extra notebook, not graded")
                    continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        report.students.append(folder.name)
    if not report.students:
        raise CourseError(f"--from: {source} holds no <student>/ folders")
    return report
