"""Score many implementations of the graded functions in one kernel.

Each implementation replaces one function's solution cell; the notebook's own
test cells (hidden parts included, as autograding runs them) then give a
verdict per test cell. One kernel per assignment keeps this fast: the setup
and solution cells run once, and after each implementation the solution is
put back.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from dlcourse.grading.spec import tests_of
from dlcourse.runner.notebooks import cells_by_grade_id, nbgrader_meta, read_notebook, strip_markers


@dataclass(frozen=True)
class Implementation:
    """Code for one solution cell. ``correct`` says whether it deserves full marks."""

    name: str
    grade_id: str
    source: str
    correct: bool


def mutant(name: str, grade_id: str, source: str) -> Implementation:
    """A typical mistake: must lose marks on ``grade_id``."""
    return Implementation(name, grade_id, source, correct=False)


def alternative(name: str, grade_id: str, source: str) -> Implementation:
    """Another correct solution: must keep full marks."""
    return Implementation(name, grade_id, source, correct=True)


@dataclass
class Verdicts:
    implementation: Implementation
    passed: dict[str, bool] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    displays: list[str] = field(default_factory=list)  # test cells that showed a value

    def failed(self) -> list[str]:
        return [t for t, ok in self.passed.items() if not ok]


class OneKernel:
    """A kernel with a source notebook's setup and solutions loaded."""

    def __init__(self, source: Path, skip: Iterable[str] = (), timeout: int = 600,
                 env: dict[str, str] | None = None) -> None:
        from nbclient import NotebookClient

        self.source = Path(source)
        self.nb = read_notebook(self.source)
        self.cells = cells_by_grade_id(self.nb)
        self.skip = set(skip)
        self.client = NotebookClient(
            nbformat.v4.new_notebook(), timeout=timeout, kernel_name="python3", allow_errors=True,
            resources={"metadata": {"path": str(self.source.parent)}},
        )
        self.env = env

    def __enter__(self) -> OneKernel:
        # The kernel's own stderr (TensorFlow's C++ log, transport warnings) is noise here.
        options = {"stderr": subprocess.DEVNULL, **({"env": self.env} if self.env else {})}
        self._context = self.client.setup_kernel(**options)
        self._context.__enter__()
        for cell in self.nb.cells:
            meta = nbgrader_meta(cell)
            if cell.cell_type == "code" and not meta.get("grade") and cell.get("id") not in self.skip \
                    and meta.get("grade_id") not in self.skip:
                self.run(strip_markers(cell.source), must_pass=meta.get("locked") or meta.get("solution"))
        return self

    def __exit__(self, *exc) -> None:
        self._context.__exit__(*exc)

    def run(self, source: str, must_pass: bool = False) -> str | None:
        """Execute ``source``; None if it ran, else 'ErrorName: message'."""
        cell = nbformat.v4.new_code_cell(source)
        self.client.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.client.nb.cells) - 1)
        self.last_displayed = any(o.output_type == "execute_result" for o in cell.outputs)
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if errors:
            message = f"{errors[0].ename}: {errors[0].evalue}"
            if must_pass:
                raise RuntimeError(f"{self.source.name}: a set-up cell failed: {message}\n{source[:300]}")
            return message
        return None

    def test_ids(self) -> list[str]:
        return [gid for gid, cell in self.cells.items()
                if nbgrader_meta(cell).get("grade") and cell.cell_type == "code" and gid not in self.skip]

    def score(self, impl: Implementation, test_ids: Iterable[str]) -> Verdicts:
        verdicts = Verdicts(impl)
        error = self.run(impl.source)
        for test_id in test_ids:
            message = error or self.run(strip_markers(self.cells[test_id].source))
            verdicts.passed[test_id] = message is None
            if message is None and self.last_displayed:
                verdicts.displays.append(test_id)
            if message:
                verdicts.messages[test_id] = message
        self.run(strip_markers(self.cells[impl.grade_id].source), must_pass=True)  # restore
        return verdicts


def score_implementations(source: Path, implementations: list[Implementation],
                          skip: Iterable[str] = (), env: dict[str, str] | None = None) -> list[Verdicts]:
    """Verdicts of every test cell for every implementation, in one kernel.

    Every test cell of the notebook runs for each implementation, so a mistake
    that costs marks outside its own grade_id shows up too.
    """
    with OneKernel(source, skip=skip, env=env) as kernel:
        test_ids = kernel.test_ids()
        return [kernel.score(impl, test_ids) for impl in implementations]


def judge(verdicts: Verdicts, depends_on: dict[str, set[str]] | None = None) -> str | None:
    """None when the verdicts are what the implementation deserves, else the problem.

    A correct implementation passes every test; a mutant fails at least one test
    of its own grade_id and no test of another grade_id, except for grade_ids
    that build on its function (``depends_on[other] = {grade_id, ...}``).
    """
    impl = verdicts.implementation
    own = set(tests_of(impl.grade_id, verdicts.passed))
    if verdicts.displays:
        return (f"{impl.name}: test cells {', '.join(verdicts.displays)} show a value, which nbgrader "
                "reads as a partial score")
    if impl.correct:
        failed = verdicts.failed()
        return f"correct {impl.name} failed {', '.join(failed)}: {verdicts.messages}" if failed else None
    if not own & set(verdicts.failed()):
        return f"mutant {impl.name} passed every test of {impl.grade_id}"
    dependants = {t for other, deps in (depends_on or {}).items() if impl.grade_id in deps
                  for t in tests_of(other, verdicts.passed)}
    leaked = [t for t in verdicts.failed() if t not in own and t not in dependants]
    return f"mutant {impl.name} also failed {', '.join(leaked)}" if leaked else None
