"""The package's layers: the student side never imports the TA side, and no module imports
itself round a cycle.

The student side (what a kernel imports) runs inside a sandbox that hides the TA side
(:data:`dlcourse.runner.sandbox.TA_SUBPACKAGES`): an import of the runner from there would
fail only when a student's notebook is graded. Cycles are refused module by module, imports
inside functions included: such an import hides a cycle, it does not remove it.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

from dlcourse.runner import sandbox

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "dlcourse"


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, cache_dir=None)


def test_the_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_every_part_of_the_package_is_on_one_side():
    """A new module or subpackage is either in the student-side contract or hidden from the
    sandbox as TA side: none is left out of both."""
    contract = _contracts()["student-side"]
    ta_side = {f"{PACKAGE}.{name}" for name in sandbox.TA_SUBPACKAGES}
    assert set(contract["forbidden_modules"]) == ta_side
    children = _graph().find_children(PACKAGE)
    student_side = set(contract["source_modules"])
    assert not student_side & ta_side
    assert children == student_side | ta_side, (
        f"not on either side: {sorted(children - student_side - ta_side)}; "
        f"in the contract but gone: {sorted(student_side - children)}")


def test_the_package_itself_imports_nothing_of_the_ta_side():
    graph = _graph()
    ta_side = {f"{PACKAGE}.{name}" for name in sandbox.TA_SUBPACKAGES}
    found = {m for m in graph.find_modules_directly_imported_by(PACKAGE)
             if any(m == t or m.startswith(t + ".") for t in ta_side)}
    assert not found


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert strongly_connected(edges) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_round_a_cycle():
    """Every import counts, those inside functions and under TYPE_CHECKING too."""
    graph = _graph()
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    cycles = strongly_connected(edges)
    described = []
    for cycle in cycles:
        members = set(cycle)
        links = [f"{a} -> {b}" for a in cycle for b in sorted(edges[a] & members)]
        described.append(", ".join(links))
    assert not cycles, "import cycles:\n" + "\n".join(described)
