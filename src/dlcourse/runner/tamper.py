"""Find attempts to game the tests in a submitted notebook, by reading it.

This is the report, not the defence: edited or deleted test cells are restored
by nbgrader (``OverwriteCells``), and the hidden tests are repeated outside the
student's kernel (:mod:`dlcourse.runner.verify`), so none of these can buy points.
The findings tell the TA who tried.
"""

from __future__ import annotations

import ast
import re
import threading

from nbformat import NotebookNode

from dlcourse.runner.notebooks import grade_id, nbgrader_meta

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


#: Two grading threads parsing at once have failed here (CPython 3.11.7) with "SystemError: AST
#: constructor recursion depth mismatch" (the AST converter's depth bookkeeping, see
#: python/cpython#106905). Parses in this process take turns; they take milliseconds.
_AST_LOCK = threading.Lock()


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    if isinstance(node, ast.Call):
        return _root_name(node.func)
    return node.id if isinstance(node, ast.Name) else None


def _attribute_chain(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:
        return "?"


def scan_source(source: str, where: str) -> list[str]:
    """Findings in one cell's code (unparseable code is the tests' business, not ours)."""
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


def _test_source(cell: NotebookNode) -> str:
    return cell.source.strip()


def released_view(source: NotebookNode) -> NotebookNode:
    """The source notebook with hidden-test regions removed, as students get its test cells."""
    import copy

    from nbgrader.preprocessors import ClearHiddenTests

    return ClearHiddenTests().preprocess(copy.deepcopy(source), {})[0]


def scan_notebook(submitted: NotebookNode, source: NotebookNode) -> list[str]:
    """Everything suspicious in a submission, compared with the assignment's source notebook."""
    released = released_view(source)
    released_tests = {grade_id(c): c for c in released.cells
                      if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}
    findings = []
    seen = set()
    for index, cell in enumerate(submitted.cells, start=1):
        gid = grade_id(cell)
        if gid in released_tests:
            seen.add(gid)
            if _test_source(cell) != _test_source(released_tests[gid]):
                findings.append(f"test cell {gid} was edited (the original was restored for grading)")
            continue
        if cell.cell_type != "code":
            continue
        findings += scan_source(cell.source, gid or f"cell {index}")
    for gid in released_tests:
        if gid not in seen:
            findings.append(f"test cell {gid} was deleted (it was restored for grading)")
    return findings


def restore_deleted_tests(submitted: NotebookNode, source: NotebookNode) -> list[str]:
    """Put deleted test cells back, each after the cell that precedes it in the release.

    nbgrader then overwrites every test cell from the gradebook, so the
    restored copies run exactly as released. Returns the grade_ids put back.
    """
    import copy

    released = released_view(source)
    present = {grade_id(c) for c in submitted.cells}
    restored = []
    previous: str | None = None
    for cell in released.cells:
        gid = grade_id(cell)
        meta = nbgrader_meta(cell)
        if gid and gid not in present and meta.get("grade") and not meta.get("solution"):
            ids = [grade_id(c) for c in submitted.cells]
            position = ids.index(previous) + 1 if previous in ids else len(submitted.cells)
            submitted.cells.insert(position, copy.deepcopy(cell))
            present.add(gid)
            restored.append(gid)
        if gid in present:
            previous = gid
    return restored
