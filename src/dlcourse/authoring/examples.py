"""Example submissions for the demo and the pipeline tests, derived from the sources.

For each assignment: ``perfect`` (solution code in the released notebook),
``untouched`` (the release as handed out), ``partly_wrong`` (perfect, with
the cells in ``examples/<assignment>/partly_wrong/<grade_id>.py`` swapped in)
and ``broken`` (a notebook file cut off half-way, as a failed upload looks).
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from pathlib import Path

import nbformat

from dlcourse.runner.course import Course
from dlcourse.runner.notebooks import fill_solutions, read_notebook, replace_cell_sources

STUDENTS = ("perfect", "untouched", "partly_wrong", "broken")


def examples_dir(course: Course) -> Path:
    return course.root / "examples"


def submissions_dir(course: Course, assignment: str) -> Path:
    """The folder of ``<student>/<assignment>.ipynb`` that `course grade --from` takes."""
    return examples_dir(course) / "submissions" / assignment


def reference_handins(course: Course, assignment: str) -> list[Path]:
    """The solution's trained files a perfect submission hands in (notebook metadata)."""
    from dlcourse.errors import CourseError
    from dlcourse.validate import handin_names

    paths = []
    for name in handin_names(read_notebook(course.source_notebook(assignment))):
        path = course.solutions / assignment / name
        if not path.is_file():
            raise CourseError(f"{path} is missing: run the solution notebook to train and save it")
        paths.append(path)
    return paths


def _mistakes(course: Course, assignment: str) -> dict[str, str]:
    folder = examples_dir(course) / assignment / "partly_wrong"
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.py"))}


def write_examples(course: Course, assignment: str, dest: Path) -> None:
    """Write the four example submissions of ``assignment`` below ``dest``."""
    release = read_notebook(course.release_notebook(assignment))
    perfect = fill_solutions(release, read_notebook(course.source_notebook(assignment)))
    notebooks = {
        "perfect": perfect,
        "untouched": release,
        "partly_wrong": replace_cell_sources(perfect, _mistakes(course, assignment)),
    }
    name = f"{assignment}.ipynb"
    handins = reference_handins(course, assignment)
    for student, nb in notebooks.items():
        (dest / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest / student / name)
        if student != "untouched":
            for path in handins:
                shutil.copyfile(path, dest / student / path.name)
    text = (dest / "perfect" / name).read_text()
    (dest / "broken").mkdir(parents=True, exist_ok=True)
    (dest / "broken" / name).write_text(text[: len(text) // 2])


def sync_examples(course: Course, assignment: str, check: bool = False) -> list[str]:
    """Regenerate (or compare) the committed examples; returns what differed."""
    target = submissions_dir(course, assignment)
    with tempfile.TemporaryDirectory(prefix="dlcourse-examples-") as tmp:
        fresh = Path(tmp)
        write_examples(course, assignment, fresh)
        diffs = []
        for student in STUDENTS:
            names = {p.name for d in (fresh, target) for p in (d / student).glob("*") if p.is_file()}
            for filename in sorted(names):
                a, b = fresh / student / filename, target / student / filename
                if not (a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False)):
                    diffs.append(f"examples/submissions/{assignment}/{student} outdated")
                    break
        if diffs and not check:
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(fresh, target)
            for folder in (target, *(p for p in target.rglob("*") if p.is_dir())):
                folder.chmod(0o755)
    return diffs
