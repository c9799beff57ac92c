"""Reading nbgrader notebooks and moving solution code between them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from dlcourse.errors import CourseError

_MARKER = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")
LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def read_notebook(path: str | Path) -> NotebookNode:
    """Read a notebook, turning every way it can be broken into a CourseError."""
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"notebook not found: {path}")
    try:
        return nbformat.read(path, as_version=4)
    except (json.JSONDecodeError, UnicodeDecodeError, nbformat.reader.NotJSONError):
        raise CourseError(f"{path} is not a valid notebook (not JSON: cut off or corrupted)") from None
    except Exception as exc:  # nbformat raises several validation types
        raise CourseError(f"{path} is not a valid notebook ({type(exc).__name__}: {exc})") from None


def nbgrader_meta(cell: NotebookNode) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def cells_by_grade_id(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {gid: cell for cell in nb.cells if (gid := grade_id(cell))}


def strip_markers(source: str) -> str:
    """Drop nbgrader's BEGIN/END SOLUTION and HIDDEN TESTS marker lines."""
    return "\n".join(line for line in source.splitlines() if not _MARKER.match(line))


def solution_cell_ids(nb: NotebookNode) -> list[str]:
    """grade_ids of the cells a student edits (code or written answers)."""
    return [
        gid for cell in nb.cells
        if (gid := grade_id(cell)) and nbgrader_meta(cell).get("solution")
    ]


def fill_solutions(
    release: NotebookNode, source: NotebookNode, grade_ids: Iterable[str] | None = None
) -> NotebookNode:
    """A copy of ``release`` with solution cells taken from ``source``.

    This is what a student who answers everything like the solution submits.
    """
    filled = nbformat.from_dict(json.loads(json.dumps(release)))
    solutions = cells_by_grade_id(source)
    wanted = set(solution_cell_ids(release) if grade_ids is None else grade_ids)
    for cell in filled.cells:
        gid = grade_id(cell)
        if gid in wanted and gid in solutions:
            cell.source = strip_markers(solutions[gid].source)
    return filled


def replace_cell_sources(nb: NotebookNode, sources: dict[str, str]) -> NotebookNode:
    """A copy of ``nb`` with the given grade_ids' sources replaced."""
    changed = nbformat.from_dict(json.loads(json.dumps(nb)))
    cells = cells_by_grade_id(changed)
    missing = sorted(set(sources) - set(cells))
    if missing:
        raise CourseError(f"no cell with grade_id {', '.join(missing)}")
    for gid, text in sources.items():
        cells[gid].source = text
    return changed


def solution_namespace(path: str | Path, grade_ids: Iterable[str]) -> dict[str, Any]:
    """Execute the named cells of a source notebook (markers removed) in one namespace.

    Used to compute reference outputs from the solution itself.
    """
    cells = cells_by_grade_id(read_notebook(path))
    namespace: dict[str, Any] = {"__name__": "__solution__"}
    for gid in grade_ids:
        if gid not in cells:
            raise CourseError(f"{path} has no cell with grade_id {gid!r}")
        exec(compile(strip_markers(cells[gid].source), f"{path}:{gid}", "exec"), namespace)
    return namespace


def find_leaks(folder: str | Path) -> list[str]:
    """What in a student-facing folder must not be there: markers or hidden files."""
    from dlcourse.runner.nbgrader_plugins import is_handin, is_hidden

    problems = []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        if is_hidden(path.name):
            problems.append(f"{path}: hidden file")
        elif is_handin(path.name):
            problems.append(f"{path}: reference model")
        elif path.suffix in {".ipynb", ".py", ".md", ".txt", ".json"}:
            text = path.read_text(errors="replace")
            for marker in LEAK_MARKERS:
                if marker in text:
                    problems.append(f"{path}: contains '{marker}'")
                    break
    return problems
