"""Build small nbgrader source notebooks and throw-away courses for tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dlcourse.runner.course import CONFIG_NAME, Course

REPO = Path(__file__).resolve().parents[1]


def cell(kind: str, source: str, grade_id: str | None = None, *, grade: bool = False,
         solution: bool = False, locked: bool = False, points: int = 0):
    """One cell; ``grade_id`` set means an nbgrader cell."""
    c = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
    if grade_id:
        meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
                "solution": solution, "task": False}
        if grade:
            meta["points"] = points
        c.metadata["nbgrader"] = meta
        c.id = grade_id
    return c


def notebook(cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    for i, c in enumerate(nb.cells):
        if "nbgrader" not in c.metadata:
            c.id = f"cell-{i}"
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return nb


def make_course(root: Path, assignments: dict[str, nbformat.NotebookNode],
                extra_files: dict[str, dict[str, bytes]] | None = None) -> Course:
    """A course at ``root`` with the repository's nbgrader_config.py and the given sources."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / CONFIG_NAME, root / CONFIG_NAME)
    for name, nb in assignments.items():
        folder = root / "solutions" / name
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{name}.ipynb")
        for filename, data in (extra_files or {}).get(name, {}).items():
            (folder / filename).write_bytes(data)
    return Course(root)


TINY = notebook([
    cell("code", "import math", "setup", locked=True),
    cell("code", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
         "double", solution=True),
    cell("code", "assert double(2) == 4, 'double(2) should be 4'\n"
         "### BEGIN HIDDEN TESTS\nassert double(-3) == -6\n### END HIDDEN TESTS",
         "test_double", grade=True, locked=True, points=2),
    cell("markdown", "Answer key: it doubles.", "question_double", grade=True, solution=True, points=1),
])


def tiny_course(root: Path) -> Course:
    """A released one-function course: fast enough for pipeline and CLI tests."""
    from dlcourse.authoring.release import release

    course = make_course(root, {"tiny": TINY})
    release(course)
    return course


def tiny_submission(course: Course, body: str | None = None) -> nbformat.NotebookNode:
    """The released notebook with ``double``'s body (None: the solution; '' : untouched)."""
    from dlcourse.runner.notebooks import fill_solutions, read_notebook, replace_cell_sources

    release = read_notebook(course.release_notebook("tiny"))
    if body == "":
        return release
    filled = fill_solutions(release, TINY)
    return filled if body is None else replace_cell_sources(filled, {"double": body})
