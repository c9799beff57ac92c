"""Where the course lives on disk, and scratch copies of it for grading runs."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dlcourse.errors import CourseError

CONFIG_NAME = "nbgrader_config.py"


@dataclass(frozen=True)
class Course:
    """An nbgrader course directory laid out as this repository is."""

    root: Path

    @classmethod
    def find(cls, start: str | Path | None = None) -> Course:
        """The course whose root holds nbgrader_config.py, searching upwards."""
        here = Path(start or os.environ.get("DLCOURSE_ROOT") or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_NAME).is_file() and (folder / "solutions").is_dir():
                return cls(folder)
        raise CourseError(
            f"no course found at or above {here} (looked for {CONFIG_NAME} beside solutions/)"
        )

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def assignments(self) -> Path:
        return self.root / "assignments"

    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @property
    def grades(self) -> Path:
        return self.root / "grades"

    def assignment_ids(self) -> list[str]:
        """Assignments with a source notebook ``solutions/<id>/<id>.ipynb``."""
        if not self.solutions.is_dir():
            return []
        return sorted(
            p.name for p in self.solutions.iterdir() if (p / f"{p.name}.ipynb").is_file()
        )

    def require_assignment(self, assignment: str) -> str:
        known = self.assignment_ids()
        if assignment not in known:
            raise CourseError(
                f"unknown assignment {assignment!r} (known: {', '.join(known) or 'none'})"
            )
        return assignment

    def source_notebook(self, assignment: str) -> Path:
        return self.solutions / assignment / f"{assignment}.ipynb"

    def release_notebook(self, assignment: str) -> Path:
        return self.assignments / assignment / f"{assignment}.ipynb"

    def student_ids(self, assignment: str) -> list[str]:
        if not self.submitted.is_dir():
            return []
        return sorted(
            p.name for p in self.submitted.iterdir() if (p / assignment).is_dir()
        )


def scratch_course(source: Course, dest: str | Path) -> Course:
    """A fresh course at ``dest`` that shares ``source``'s solutions (read only).

    Its own nbgrader_config.py copy sets the root to ``dest``, so release,
    submissions, gradebook and feedback of the scratch course stay there.
    """
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copyfile(source.root / CONFIG_NAME, dest / CONFIG_NAME)
    (dest / "solutions").symlink_to(source.solutions, target_is_directory=True)
    return Course(dest)
