"""nbgrader's autograde with every hidden test decided outside the student's notebook.

Two autograde preprocessors around nbgrader's Execute step (wired in nbgrader_config.py, so
`course grade`, plain ``nbgrader autograde`` and formgrader's Autograde all run them):

- :class:`StartTrusted`, first: opens the notebook's time and memory budget
  (:mod:`dlcourse.runner.limits`), plans the repeat of its hidden tests from the notebook as
  nbgrader will run it and the references beside the source notebook, starts it in the
  background (:mod:`dlcourse.runner.repeat`), and removes every hidden-test block from the
  notebook, so that the student's kernel never runs hidden test code or sees a reference.
- :class:`FinishTrusted`, after Execute: waits for the repeat and writes its verdicts into
  the test cells' outputs, where nbgrader's SaveAutoGrades reads scores: a failed hidden test
  puts an error first in its cell (0 points, with the spec's message for the feedback), a
  passed one adds a line saying so. A test cell passes only if its visible part passed in the
  notebook *and* every hidden test in it passed outside.

When the repeat cannot run for reasons of the machine (no reference file, a server that
cannot isolate its jobs), the notebook's autograde fails with that reason instead of scoring
anything. What was decided is kept in :data:`RESULTS` for the caller in the same process
(`course grade`'s autograde worker, :mod:`dlcourse.runner.warm`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from pathlib import Path

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from nbformat.v4 import new_output
from traitlets import Bool, Float

from dlcourse.grading.spec import tests_of
from dlcourse.runner import limits, repeat, repeat_servers, sandbox
from dlcourse.runner.notebooks import grade_id, nbgrader_meta, read_notebook
from dlcourse.runtime import GRADING_VARIABLE


class GradingLimit(RuntimeError):
    """The notebook's student code passed a limit: it is not graded (the reason says which)."""


class _Repeat:
    """The repeat of one notebook's hidden tests, running in a thread."""

    def __init__(self, jobs: list[repeat.Job], budget: limits.Budget) -> None:
        self.verdicts: list[repeat.Verdict] = []
        self.error: BaseException | None = None
        self.budget = budget
        self._thread = threading.Thread(target=self._run, args=(jobs, sandbox.current_device(), _repeat_env()),
                                        name="trusted-repeat", daemon=True)
        self._thread.start()

    def _run(self, jobs: list[repeat.Job], device: str, env: dict[str, str]) -> None:
        try:
            self.verdicts = repeat.run_plan(jobs, device, env, self.budget)
        except BaseException as exc:
            self.error = exc

    def wait(self) -> list[repeat.Verdict]:
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.verdicts

    def abandon(self) -> None:
        self.budget.stop()
        self._thread.join(timeout=60)


def _repeat_env() -> dict[str, str]:
    """What the repeat servers run with: the sandbox's kept variables of this process (nbgrader
    sets NBGRADER_EXECUTION=autograde while it autogrades)."""
    return sandbox.kept({**os.environ, GRADING_VARIABLE: "autograde"})


def prewarm() -> None:
    """Start this process's repeat servers now, without waiting for them (a warm worker does
    this before its first submission, so that TensorFlow loads while nbgrader does)."""
    for kind in ("framework", "numpy"):
        repeat_servers.pool().server(kind, sandbox.current_device(), _repeat_env())


_RUNNING: list[_Repeat] = []
#: (student, assignment, notebook) -> what the trusted side decided: verdicts and findings.
RESULTS: dict[tuple[str, str, str], dict] = {}
#: The repeat could not run, for reasons of the machine, since the caller last cleared this
#: list: nbgrader turns the exception into log text, the caller in the same process (the
#: autograde worker) learns of it here, by type.
UNAVAILABLE: list[repeat_servers.RepeatUnavailable] = []


def _unavailable(error: repeat_servers.RepeatUnavailable) -> repeat_servers.RepeatUnavailable:
    UNAVAILABLE.append(error)
    return error


def abandon() -> None:
    """Stop whatever is left of a notebook whose grading ended early (its kernel died)."""
    while _RUNNING:
        _RUNNING.pop().abandon()
    limits.end()


class StartTrusted(Preprocessor):
    """First autograde step: budget, repeat started, hidden tests out of the notebook."""

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)
    timeout = Float(1800.0, allow_none=True, help="Seconds of wall-clock time all student code of one "
                    "notebook may take (kernel and repeat together), as course grade --timeout; None for "
                    "no limit. Per-cell limits are Execute.timeout.").tag(config=True)
    memory_gb = Float(4.0, allow_none=True, help="Memory (GB) all student code of one notebook may hold at "
                      "once, resident or stored in its temporary files, as course grade --memory; None for "
                      "no limit.").tag(config=True)
    source_directory = "solutions"

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        abandon()
        info = resources["nbgrader"]
        folder = Path(resources["metadata"]["path"])
        source_dir = _source_dir(self, info["assignment"], folder)
        source_nb = read_notebook(source_dir / f"{info['notebook']}.ipynb")
        budget = limits.begin(self.timeout, int(self.memory_gb * 2**30) if self.memory_gb else None)
        main = info["notebook"] == info["assignment"]
        plan = repeat.plan(info["assignment"] if main else "", source_dir, source_nb, nb, folder)
        if plan.problems:
            limits.end()
            raise _unavailable(repeat_servers.RepeatUnavailable(
                "; ".join(f"{k}: {v}" for k, v in sorted(plan.problems.items()))))
        for cell in nb.cells:
            if cell.cell_type == "code" and repeat.hidden_blocks(cell.source):
                cell.source = repeat.without_hidden_tests(cell.source)
        _RUNNING.append(_Repeat(plan.jobs, budget))
        resources["dlcourse_trusted"] = True
        return nb, resources


def _source_dir(pre: Preprocessor, assignment: str, folder: Path) -> Path:
    """The assignment's source folder (references beside the source notebook): from nbgrader's
    configuration; the course root is three levels above the notebook's folder
    (``<root>/<autograded>/<student>/<assignment>``)."""
    configured = pre.config.get("CourseDirectory", {})
    root = Path(configured.get("root") or folder.resolve().parents[2])
    return root / configured.get("source_directory", "source") / assignment


def _error(message: str) -> NotebookNode:
    return new_output("error", ename="HiddenTestFailure", evalue=message,
                      traceback=[f"HiddenTestFailure: {message}"])


def _visible_tests_follow(verdicts: list[repeat.Verdict], grade_ids: list[str]) -> list[repeat.Verdict]:
    """A function that must be written without frameworks scores its visible tests only when its
    hidden test, run where no framework is installed, passes: inside the notebook nothing stops
    code from borrowing Keras (or the course's Keras-based reference step) to pass them."""
    extra = []
    for verdict in verdicts:
        if verdict.passed or not verdict.without_frameworks or not verdict.function:
            continue
        for cell in tests_of(verdict.function, grade_ids):
            if cell != verdict.test_id:
                extra.append(repeat.Verdict(cell, False, f"{verdict.function} must work without Keras or "
                                            f"TensorFlow, and its hidden test, run without them, failed: "
                                            f"{verdict.message}", verdict.function))
    return extra


def apply(nb: NotebookNode, verdicts: list[repeat.Verdict]) -> None:
    """Write the verdicts into the test cells' outputs (see the module's docstring)."""
    grade_ids = [gid for cell in nb.cells if (gid := grade_id(cell))]
    by_cell: dict[str, list[repeat.Verdict]] = {}
    for verdict in [*verdicts, *_visible_tests_follow(verdicts, grade_ids)]:
        by_cell.setdefault(verdict.test_id, []).append(verdict)
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        mine = by_cell.get(grade_id(cell) or "", [])
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution") or not mine:
            continue
        failed = [v.message or "hidden test failed" for v in mine if not v.passed]
        if failed:
            cell.outputs.insert(0, _error("; ".join(failed)))
        elif not any(o.get("output_type") == "error" for o in cell.outputs):
            said = [v.message for v in mine if v.message]
            text = "; ".join(said) if said else "passed"
            cell.outputs.append(new_output("stream", name="stdout", text=f"Hidden tests: {text}\n"))


class FinishTrusted(Preprocessor):
    """Autograde step after Execute: the repeat's verdicts into the notebook's test cells."""

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        if not resources.get("dlcourse_trusted") or not _RUNNING:
            raise _unavailable(repeat_servers.RepeatUnavailable(
                "the hidden tests were not started (StartTrusted must come first)"))
        running = _RUNNING.pop()
        try:
            verdicts = running.wait()
        except repeat_servers.RepeatUnavailable as exc:
            _unavailable(exc)
            raise
        finally:
            budget = limits.end()
        if budget is not None and budget.limit:
            raise GradingLimit(budget.limit)
        apply(nb, verdicts)
        info = resources["nbgrader"]
        RESULTS[(info["student"], info["assignment"], info["notebook"])] = {
            "verdicts": [asdict(v) for v in verdicts],
            "peak_memory": budget.peak if budget else 0, "seconds": budget.seconds() if budget else 0.0}
        return nb, resources
