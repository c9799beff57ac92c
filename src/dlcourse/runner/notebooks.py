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
from dlcourse.runner.nbgrader_plugins import is_handin, is_hidden

_MARKER = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")
LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


#: Largest notebook read, in bytes. Assignment notebooks are ~50 kB as released and a few MB
#: with a student's plots as outputs; parsing holds about ten times the file in memory (the JSON,
#: the NotebookNode, the validation), so 50 MB keeps one submission's read under ~0.5 GB.
MAX_NOTEBOOK_BYTES = 50 * 2**20
#: Deepest JSON nesting accepted. A notebook nests 6 levels; JSON carried in outputs (a Plotly
#: figure, widget state) adds about 10. The parsers recurse per level (json.loads raises
#: RecursionError near 1,000, nbformat's conversion and validation earlier), so 100 is checked
#: on the raw bytes before any of them runs.
MAX_JSON_DEPTH = 100
#: Most cells accepted. The assignments have under 100; validation and grading are per cell.
MAX_CELLS = 10_000
#: Longest source of one cell, in characters. Honest code cells are under 20 kB and a markdown
#: cell with an inline base64 figure a few hundred kB; per-cell work downstream (nbgrader's
#: regexes, the tamper scan, feedback) grows with it.
MAX_CELL_SOURCE_CHARS = 2_000_000


def read_notebook(path: str | Path) -> NotebookNode:
    """Read a notebook, turning every way it can be broken into a CourseError.

    A submitted notebook is untrusted input: its size, JSON nesting depth,
    number of cells and longest cell source are checked (:data:`MAX_NOTEBOOK_BYTES`,
    :data:`MAX_JSON_DEPTH`, :data:`MAX_CELLS`, :data:`MAX_CELL_SOURCE_CHARS`)
    before nbformat parses it, and every failure, ``RecursionError`` and
    ``MemoryError`` included, is a one-line ``CourseError`` "... is not a valid
    notebook (...)".
    """
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"notebook not found: {path}")

    def invalid(why: str) -> CourseError:
        return CourseError(f"{path} is not a valid notebook ({why})")

    try:
        data = _read_capped(path)
        if _json_deeper_than(data, MAX_JSON_DEPTH):
            raise invalid(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        text = data.decode("utf-8")
        too_many = _too_many(json.loads(text))
        if too_many:
            raise invalid(too_many)
        return nbformat.reads(text, as_version=4)
    except CourseError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, nbformat.reader.NotJSONError):
        raise invalid("not JSON: cut off or corrupted") from None
    except ValueError as exc:  # json: e.g. an integer over Python's 4,300-digit limit
        raise invalid(f"not JSON: {_one_line(exc)}") from None
    except (RecursionError, MemoryError) as exc:
        raise invalid(f"{type(exc).__name__}: too deeply nested or too large to read") from None
    except Exception as exc:  # nbformat raises several validation types
        raise invalid(f"{type(exc).__name__}: {_one_line(exc)}") from None


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_capped(path: Path) -> bytes:
    """The file's bytes; a CourseError when it holds more than MAX_NOTEBOOK_BYTES.

    The size is checked before reading (a sparse 1 TB file costs nothing) and
    again while reading (a file that grows meanwhile).
    """
    import os
    import stat

    limit = MAX_NOTEBOOK_BYTES
    # O_NONBLOCK: a FIFO put in the file's place must not hang the reader (it is refused below).
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CourseError(f"{path} is not a valid notebook (not a regular file)")
        size = info.st_size
        data = b"" if size > limit else handle.read(limit + 1)
    if size > limit or len(data) > limit:
        raise CourseError(f"{path} is not a valid notebook (larger than {limit // 2**20} MB: "
                          f"{max(size, len(data)) / 2**20:,.0f} MB)")
    return data


_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(_STRUCTURE)))
_STRING = re.compile(rb'"[^"]*"')
#: +1 for an opening bracket, -1 (as a signed byte) for a closing one.
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_DEPTH_CHUNK = 8 * 2**20


def _json_deeper_than(data: bytes, limit: int) -> bool:
    """Whether JSON ``data`` nests arrays and objects deeper than ``limit``, without parsing it.

    Linear, in C-speed passes over the bytes: escaped backslashes and then escaped quotes
    removed (within a run of backslashes the pairs go from the left, as JSON reads them),
    everything but quotes and brackets deleted, strings (now without escapes) removed, and
    the running depth of the brackets left taken with NumPy. For text that is not JSON the
    answer is an estimate, and the parser rejects that text anyway.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    structure = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    brackets = _STRING.sub(b"", structure).replace(b'"', b"")  # an unterminated string's quote
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    import numpy as np

    depth = 0
    for start in range(0, len(brackets), _DEPTH_CHUNK):
        steps = np.frombuffer(brackets[start:start + _DEPTH_CHUNK].translate(_DEPTH_STEP), dtype=np.int8)
        running = np.cumsum(steps, dtype=np.int64) + depth
        if int(running.max()) > limit:
            return True
        depth = int(running[-1])
    return False


def _too_many(raw: Any) -> str | None:
    """Why the cells or a cell's source are over MAX_CELLS or MAX_CELL_SOURCE_CHARS (v4 and v3 layouts)."""
    if not isinstance(raw, dict):
        return None  # nbformat says what is wrong
    sheets = raw.get("worksheets")
    groups = [raw.get("cells")] + [w.get("cells") for w in (sheets if isinstance(sheets, list) else [])
                                   if isinstance(w, dict)]
    cells = [c for group in groups if isinstance(group, list) for c in group]
    if len(cells) > MAX_CELLS:
        return f"{len(cells):,} cells, over the limit of {MAX_CELLS:,}"
    for index, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            continue
        for key in ("source", "input"):
            source = cell.get(key)
            size = (len(source) if isinstance(source, str) else
                    sum(len(s) for s in source if isinstance(s, str)) if isinstance(source, list) else 0)
            if size > MAX_CELL_SOURCE_CHARS:
                return f"cell {index} has {size:,} characters of source, over the limit of {MAX_CELL_SOURCE_CHARS:,}"
    return None


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
