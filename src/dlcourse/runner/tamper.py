"""Find attempts to game the tests in a submitted notebook, by reading it.

This is the report, not the defence: edited or deleted test cells are restored
by nbgrader (``OverwriteCells``), and the hidden tests are repeated outside the
student's kernel (:mod:`dlcourse.runner.verify`), so none of these can buy points.
The findings tell the TA who tried.

The notebook is the student's, so the scan is built to survive it: a cell that
cannot be parsed for any reason but a syntax error (nesting deep enough to make
the parser raise ``RecursionError`` or ``MemoryError``, a cell too long to parse,
a scan out of time) becomes a finding "... could not be scanned (...): flagged
for review", never an exception and never a 0. :func:`scan_submission` also
bounds the scan's own cost: the parsing runs in a short-lived process of its own
with an address-space limit and a wall-clock timeout. This module imports only
the standard library at the top, so that process starts in a tenth of a second.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbformat import NotebookNode

#: Module roots whose attributes a student's cell has no business replacing.
GUARDED_ROOTS = {"np", "numpy", "keras", "tf", "tensorflow", "dlcourse", "builtins", "__builtins__",
                 "math", "sys", "os", "IPython", "nbgrader", "unittest", "pytest", "jax", "torch"}
#: Names whose rebinding in a student's cell replaces a check.
GUARDED_NAMES = {"allclose", "isclose", "array_equal", "assert_allclose", "assert_array_equal",
                 "assert_matches", "relative_error", "load_cases", "GradingFailure", "FunctionSpec",
                 "AssertionError", "print", "open", "exec", "eval", "__import__"}
#: Calls that take over error handling or patch objects.
GUARDED_CALLS = {"set_custom_exc", "setattr", "delattr", "patch", "register", "excepthook"}
_HIDDEN = re.compile(r"hidden_|hidden\*|hidden\?")

#: Longest code cell parsed, in characters. Honest code cells are under 20 kB; parsing 1 MB of
#: dense code took 2.8 s and about 300 MB here (the AST is ~300 bytes per source character),
#: so a longer cell is flagged for review instead of parsed.
MAX_SCAN_CHARS = 1_000_000
#: Time one in-process scan (:func:`scan_notebook`) may spend on parsing, in seconds: cells
#: left when it is spent are flagged, not parsed. An honest notebook takes well under a second.
SCAN_BUDGET_S = 30.0
#: Wall-clock limit of :func:`scan_submission`'s process, in seconds: its start takes ~0.1 s
#: and an honest scan well under one; at the limit of MAX_SCAN_CHARS per cell, about 20 cells.
SCAN_TIMEOUT_S = 60.0
#: Address-space limit of that process (RLIMIT_AS). It imports no TensorFlow (which needs 4 GiB
#: of address space just to import); it starts at 17 MB of address space, and a cell of 325 kB
#: peaked at 110 MB (so ~350 MB at MAX_SCAN_CHARS): 2 GiB leaves room and stops a runaway parse.
SCAN_MEMORY_BYTES = 2 * 2**30
#: Most findings one submission reports through :func:`scan_submission` (the rest are counted):
#: a cell can repeat a patch a hundred thousand times, the TA needs the first few.
MAX_FINDINGS = 200
#: Longest label (a grade_id, an attribute chain) quoted in a finding.
_MAX_LABEL = 80


#: Two grading threads parsing at once have failed here (CPython 3.11.7) with "SystemError: AST
#: constructor recursion depth mismatch" (the AST converter's depth bookkeeping, see
#: python/cpython#106905). Parses in this process take turns; they take milliseconds.
_AST_LOCK = threading.Lock()

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _printable(text: str, limit: int = _MAX_LABEL) -> str:
    """``text`` safe for a terminal, a CSV or formgrader: control characters escaped, length capped."""
    text = _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unscannable(where: str, why: str) -> str:
    return f"{where} could not be scanned ({why}): flagged for review"


def _nbgrader(cell: Any) -> dict:
    """The cell's nbgrader metadata; {} when the (student-controlled) metadata is not a mapping."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbgrader if isinstance(nbgrader, dict) else {}


def _grade_id(cell: Any) -> str | None:
    """The cell's grade_id where it is a non-empty string (students can write anything there)."""
    gid = _nbgrader(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def _cell_text(cell: Any) -> str | None:
    source = cell.get("source", "") if isinstance(cell, dict) else None
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    return source if isinstance(source, str) else None


def _root_name(node: ast.AST) -> str | None:
    # A loop, not recursion: `f()()()...().x = 1` nests as deep as the student likes.
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _attribute_chain(node: ast.AST) -> str:
    try:
        return _printable(ast.unparse(node))
    except Exception:  # unparse recurses: a deep chain raises RecursionError
        return "?"


def scan_source(source: str, where: str) -> list[str]:
    """Findings in one cell's code (unparseable code is the tests' business, not ours).

    Never raises: code the parser or the scan cannot handle (``RecursionError``,
    ``MemoryError``, ``ValueError``, a cell over :data:`MAX_SCAN_CHARS`) is one
    finding, ``<where> could not be scanned (<why>): flagged for review``.
    """
    try:
        return _scan_source(source, where)
    except Exception as exc:
        return [_unscannable(where, type(exc).__name__)]


def _scan_source(source: str, where: str) -> list[str]:
    if not isinstance(source, str):
        return [_unscannable(where, "its source is not text")]
    if len(source) > MAX_SCAN_CHARS:
        return [_unscannable(where, f"{len(source):,} characters, over the {MAX_SCAN_CHARS:,} parsed")]
    # IPython magics and shell escapes are not Python; blank them out.
    lines = [("" if line.lstrip().startswith(("%", "!")) else line) for line in source.splitlines()]
    try:
        with _AST_LOCK:
            tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    # Aliases of guarded modules: `import numpy.testing as npt`, `from numpy import testing`.
    modules = set(GUARDED_ROOTS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names
                        if a.name.split(".")[0] in GUARDED_ROOTS}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in GUARDED_ROOTS:
            modules |= {a.asname or a.name for a in node.names}
    findings = []
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            if isinstance(target, ast.Attribute | ast.Subscript):
                root = _root_name(target)
                if root in modules:
                    findings.append(f"{where}: replaces {_attribute_chain(target)} (monkeypatching)")
            elif isinstance(target, ast.Name) and target.id in GUARDED_NAMES:
                findings.append(f"{where}: rebinds {target.id}")
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in GUARDED_NAMES:
            findings.append(f"{where}: redefines {node.name}")
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in GUARDED_CALLS:
                findings.append(f"{where}: calls {_attribute_chain(func)}()")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _HIDDEN.search(node.value):
            findings.append(f"{where}: refers to hidden files ({node.value[:40]!r})")
        if isinstance(node, ast.Name) and node.id == "__builtins__":
            findings.append(f"{where}: touches __builtins__")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dlcourse.grading") and \
                any(a.name.startswith(("reference_", "_")) for a in node.names):
            findings.append(f"{where}: imports the grader's internals from {node.module}")
    return sorted(set(findings))


def _test_source(cell: Any) -> str:
    return (_cell_text(cell) or "").strip()


def released_view(source: NotebookNode) -> NotebookNode:
    """The source notebook with hidden-test regions removed, as students get its test cells."""
    import copy

    from nbgrader.preprocessors import ClearHiddenTests

    return ClearHiddenTests().preprocess(copy.deepcopy(source), {})[0]


def _released_tests(source: NotebookNode) -> dict[str, Any]:
    return {gid: c for c in released_view(source).cells
            if (gid := _grade_id(c)) and _nbgrader(c).get("grade") and not _nbgrader(c).get("solution")}


#: One step of a scan: a finding already known (str), or a code cell to parse (where, source).
_Step = str | tuple[str, Any]


def _scan_steps(submitted: NotebookNode, source: NotebookNode) -> list[_Step]:
    """The scan of a submission in order: comparisons with the release done, the parsing left to do."""
    released_tests = _released_tests(source)
    cells = submitted.get("cells") if isinstance(submitted, dict) else None
    steps: list[_Step] = []
    seen = set()
    for index, cell in enumerate(cells if isinstance(cells, list) else [], start=1):
        gid = _grade_id(cell)
        if gid in released_tests:
            seen.add(gid)
            if _test_source(cell) != _test_source(released_tests[gid]):
                steps.append(f"test cell {_printable(gid)} was edited (the original was restored for grading)")
            continue
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        steps.append((_printable(gid) if gid else f"cell {index}", _cell_text(cell)))
    for gid in released_tests:
        if gid not in seen:
            steps.append(f"test cell {_printable(gid)} was deleted (it was restored for grading)")
    return steps


def scan_notebook(submitted: NotebookNode, source: NotebookNode) -> list[str]:
    """Everything suspicious in a submission, compared with the assignment's source notebook.

    In this process; never raises. Parsing stops after :data:`SCAN_BUDGET_S`
    seconds, and the cells left are flagged for review. The grading runner calls
    :func:`scan_submission`, which bounds memory as well.
    """
    try:
        steps = _scan_steps(submitted, source)
    except Exception as exc:
        return [_unscannable("the notebook", type(exc).__name__)]
    deadline = time.monotonic() + SCAN_BUDGET_S
    findings: list[str] = []
    late: list[str] = []
    for step in steps:
        if isinstance(step, str):
            findings.append(step)
        elif late or time.monotonic() > deadline:
            late.append(step[0])
        else:
            where, code = step
            findings += scan_source(code, where)
    if late:
        findings.append(_unscannable(f"{len(late)} cells from {late[0]} on",
                                     f"the scan's {SCAN_BUDGET_S:g} s were spent"))
    return findings


def scan_submission(notebook: Path, source: Path) -> list[str]:
    """:func:`scan_notebook` of the files, its parsing in a short-lived process; never raises.

    The notebooks are read here (:func:`~dlcourse.runner.notebooks.read_notebook`
    checks size, nesting and counts before parsing); the cells' code is parsed in a
    fresh interpreter limited to :data:`SCAN_MEMORY_BYTES` of address space and
    :data:`SCAN_TIMEOUT_S` seconds. Findings equal :func:`scan_notebook`'s, at most
    :data:`MAX_FINDINGS` of them. When the notebook cannot be read, or that process
    fails (killed, out of memory, out of time, unreadable answer), one finding
    says the notebook could not be scanned and is flagged for review; the
    comparisons with the released test cells, which need no parsing, are kept.
    """
    notebook, source = Path(notebook), Path(source)
    try:
        from dlcourse.errors import CourseError
        from dlcourse.runner.notebooks import read_notebook

        try:
            submitted = read_notebook(notebook)
        except CourseError as exc:
            return [_unscannable("the notebook", _printable(str(exc).replace(str(notebook), notebook.name), 200))]
        steps = _scan_steps(submitted, read_notebook(source))
    except Exception as exc:
        return [_unscannable("the notebook", _printable(f"{type(exc).__name__}: {exc}", 200))]
    code = [step for step in steps if not isinstance(step, str)]
    results = _scan_elsewhere(code) if code else []
    findings: list[str] = []
    if isinstance(results, str):
        findings = [step for step in steps if isinstance(step, str)]
        findings.append(_unscannable("the notebook", results))
    else:
        parsed = iter(results)
        for step in steps:
            findings += [step] if isinstance(step, str) else next(parsed)
    if len(findings) > MAX_FINDINGS:
        more = len(findings) - MAX_FINDINGS
        findings = [*findings[:MAX_FINDINGS], f"{more} more findings not listed"]
    return findings


def _scan_elsewhere(code: list[tuple[str, Any]]) -> list[list[str]] | str:
    """scan_source of each (where, source) in a child process: the findings, or why it failed."""
    command = [sys.executable, "-P", "-c",
               "from dlcourse.runner.tamper import _scan_child; _scan_child()",
               str(SCAN_MEMORY_BYTES), str(int(SCAN_TIMEOUT_S) + 1)]
    payload = json.dumps([[where, text if isinstance(text, str) else None] for where, text in code])
    try:
        done = subprocess.run(command, input=payload.encode(), capture_output=True,
                              timeout=SCAN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"the scan took longer than {SCAN_TIMEOUT_S:g} s"
    except Exception as exc:  # OSError: no process could be started
        return f"the scan could not start: {type(exc).__name__}"
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return f"the scan was killed by {name}"
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        return _printable(f"the scan failed with exit status {done.returncode}: {last}".rstrip(": "), 200)
    try:
        results = json.loads(done.stdout)
    except (ValueError, RecursionError):
        results = None
    if not (isinstance(results, list) and len(results) == len(code)
            and all(isinstance(r, list) and all(isinstance(f, str) for f in r) for r in results)):
        return "the scan's answer was unreadable"
    return results


def _scan_child() -> None:
    """In :func:`scan_submission`'s process: limits first, then [[where, source], ...] from stdin."""
    import resource

    memory, cpu = (int(arg) for arg in sys.argv[1:3])
    for kind, soft in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu)):
        _old_soft, hard = resource.getrlimit(kind)
        resource.setrlimit(kind, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    code = json.loads(sys.stdin.buffer.read())
    results = [scan_source(text, where) for where, text in code]
    sys.stdout.write(json.dumps(results))
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown: the answer is written


def restore_deleted_tests(submitted: NotebookNode, source: NotebookNode) -> list[str]:
    """Put deleted test cells back, each after the cell that precedes it in the release.

    nbgrader then overwrites every test cell from the gradebook, so the
    restored copies run exactly as released. Returns the grade_ids put back.
    """
    import copy

    released = released_view(source)
    present = {_grade_id(c) for c in submitted.cells}
    restored = []
    previous: str | None = None
    for cell in released.cells:
        gid = _grade_id(cell)
        meta = _nbgrader(cell)
        if gid and gid not in present and meta.get("grade") and not meta.get("solution"):
            ids = [_grade_id(c) for c in submitted.cells]
            position = ids.index(previous) + 1 if previous in ids else len(submitted.cells)
            submitted.cells.insert(position, copy.deepcopy(cell))
            present.add(gid)
            restored.append(gid)
        if gid in present:
            previous = gid
    return restored
