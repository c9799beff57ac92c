"""Build small nbgrader source notebooks and throw-away courses for tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dlcourse.course import CONFIG_NAME, Course

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
