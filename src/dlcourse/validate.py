"""`course validate NOTEBOOK`: the student's own check before submitting.

Student side: this module ships in the student edition, where it is the whole
`course` command (``main``). It checks and never changes: a copy of the
notebook's folder runs in a temporary folder, in the grader's mode
(``NBGRADER_EXECUTION=autograde``: the notebook skips training and the tests see
the handed-in model, loaded the way the grader loads it), so the student's
notebook and model file stay byte for byte as they were. Every verdict names
its cell by grade_id (or cell number and first line), once per cell.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from dlcourse.errors import CourseError, run_command
from dlcourse.runtime import GRADING_VARIABLE

#: Seconds one cell may run (training is skipped in the grader's mode).
CELL_TIMEOUT = 600
#: The environment of the validation kernel: the grader's mode, without log noise.
KERNEL_ENV = {
    GRADING_VARIABLE: "autograde",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONWARNINGS": "ignore",
}
#: A student's folder is copied before it runs; a folder larger than this is refused.
COPY_LIMIT_BYTES = 2 * 2**30
HIDDEN_NOTE = "runs when graded"
_SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", ".git", ".venv"}


def read_notebook(path: Path) -> NotebookNode:
    """Read a notebook; a broken file is a one-line CourseError (this module ships without
    the TA side's ``dlcourse.runner.notebooks``)."""
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # JSON, encoding and schema errors alike
        kind = "not JSON: cut off or corrupted" if isinstance(exc, ValueError) else type(exc).__name__
        raise CourseError(f"{path} is not a valid notebook ({kind})") from None


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


@dataclass(frozen=True)
class Verdict:
    """One line of the report: a cell (or hand-in file) and what happened to it."""

    status: str  # ok | hidden | FAIL | ERROR | CHANGED | hand-in | MISSING | INVALID
    name: str
    message: str = ""

    @property
    def problem(self) -> bool:
        return self.status in {"FAIL", "ERROR", "CHANGED", "MISSING", "INVALID"}

    def line(self) -> str:
        return f"  {self.status:<7} {self.name}" + (f": {self.message}" if self.message else "")


@dataclass
class ValidationReport:
    notebook: Path
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(v.problem for v in self.verdicts)

    def named(self, status: str) -> list[str]:
        return [v.name for v in self.verdicts if v.status == status]


def cell_name(cell: NotebookNode, index: int) -> str:
    """How a report names a cell: its grade_id, else its number and first line."""
    gid = grade_id(cell)
    if gid:
        return gid
    first = next((ln.strip() for ln in cell.get("source", "").splitlines() if ln.strip()), "")
    return f"cell {index + 1}" + (f" ({first[:48]})" if first else "")


def raised(cell: NotebookNode) -> NotebookNode | None:
    """The error output of a code cell, if it raised (the course's only failure signal)."""
    if cell.cell_type != "code":
        return None
    return next((out for out in cell.get("outputs", []) if out.output_type == "error"), None)


def _error_message(error: NotebookNode) -> str:
    ename, evalue = error.get("ename", "Error"), str(error.get("evalue", "")).strip()
    if ename == "NotImplementedError" and not evalue:
        return "NotImplementedError (not implemented yet)"
    last = evalue.splitlines()[-1] if evalue else ""
    return f"{ename}: {last}" if last else ename


def _unchanged(cell: NotebookNode) -> bool | None:
    """Whether a cell still has its released text (None: the release stored no checksum)."""
    from nbgrader.utils import compute_checksum

    stored = nbgrader_meta(cell).get("checksum")
    return None if stored is None else stored == compute_checksum(cell)


def is_hidden_placeholder(cell: NotebookNode) -> bool:
    """A released test cell whose tests were all hidden: no code left, only comments."""
    try:
        return not ast.parse(cell.source).body
    except SyntaxError:
        return False


def judge(released: NotebookNode, executed: NotebookNode) -> list[Verdict]:
    """Verdicts for every graded, edited or failing cell, by cell position (never by text)."""
    verdicts: list[Verdict] = []
    for index, (cell, ran) in enumerate(zip(released.cells, executed.cells, strict=True)):
        meta, name = nbgrader_meta(cell), cell_name(cell, index)
        expected_type = meta.get("cell_type")
        if expected_type and expected_type != cell.cell_type:
            verdicts.append(Verdict("CHANGED", name, f"was a {expected_type} cell, is now {cell.cell_type}"))
            continue
        grade, solution, locked = bool(meta.get("grade")), bool(meta.get("solution")), bool(meta.get("locked"))
        if (grade or locked) and not solution and _unchanged(cell) is False:
            what = "test cell" if grade else "read-only cell"
            verdicts.append(Verdict("CHANGED", name, f"{what} was edited (it is restored before grading)"))
        error = raised(ran)
        if grade and solution:  # an answer graded as a whole (written, or code graded by hand)
            if error is not None:
                verdicts.append(Verdict("ERROR", name, _error_message(error)))
            elif _unchanged(cell) or "YOUR ANSWER HERE" in cell.source:
                verdicts.append(Verdict("FAIL", name, "not answered yet"))
            else:
                verdicts.append(Verdict("ok", name, "answered (graded by hand)"))
        elif grade and cell.cell_type == "code":
            if error is not None:
                verdicts.append(Verdict("FAIL", name, _error_message(error)))
            elif is_hidden_placeholder(cell):
                verdicts.append(Verdict("hidden", name, HIDDEN_NOTE))
            else:
                verdicts.append(Verdict("ok", name))
        elif error is not None:
            verdicts.append(Verdict("ERROR", name, _error_message(error)))
    return verdicts


def handin_names(nb: NotebookNode) -> list[str]:
    """Files the notebook asks the student to hand in (metadata ``dlcourse.handin``)."""
    return list(nb.metadata.get("dlcourse", {}).get("handin", []))


def check_handin(folder: Path, name: str) -> str:
    """Load a hand-in file as the grader does; describe it, or raise CourseError saying what is wrong."""
    path = folder / name
    if not path.is_file():
        raise CourseError(f"{name} is missing: save it next to the notebook")
    if path.stat().st_size == 0:
        raise CourseError(f"{name} is empty")
    if path.suffix != ".keras":
        return f"{name}: present ({path.stat().st_size} bytes)"
    with _quiet_process():
        import keras
        import numpy as np

        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:
            raise CourseError(f"{name} does not load as a Keras model in safe mode "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        if len(model.outputs) != 1:
            raise CourseError(f"{name} has {len(model.outputs)} outputs; hand in the main head only")
        probe = np.zeros((1, *[d or 32 for d in model.input_shape[1:]]), dtype="float32")
        try:
            out = np.asarray(model.predict(probe, verbose=0), dtype="float64")
        except Exception as exc:
            raise CourseError(f"{name} fails on an input of shape {probe.shape} ({type(exc).__name__})") from None
        if out.min() < -1e-6 or not np.allclose(out.sum(axis=-1), 1.0, atol=1e-3):
            raise CourseError(f"{name}: outputs are not class probabilities (end the model with a softmax)")
    return f"{name}: loads in safe mode; input {model.input_shape}, output {model.output_shape}"


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _quiet_process() -> Iterator[None]:
    """Keep TensorFlow/absl/Python warnings of this process off the report."""
    import logging
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in ("tensorflow", "absl", "traitlets", "nbclient"):
            logging.getLogger(logger).setLevel(logging.ERROR)
        yield


def _copy_folder(source: Path, dest: Path) -> None:
    """Copy the notebook's folder (what the notebook may read) for a run that changes nothing."""
    total = 0
    for path in source.rglob("*"):
        if any(part in _SKIP_DIRS for part in path.relative_to(source).parts):
            continue
        if path.is_file():
            total += path.stat().st_size
            if total > COPY_LIMIT_BYTES:
                raise CourseError(f"{source} holds more than {COPY_LIMIT_BYTES // 2**30} GB; "
                                  "move the notebook and its hand-in files to a folder of their own")
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns(*_SKIP_DIRS))


def execute(nb: NotebookNode, folder: Path, timeout: int = CELL_TIMEOUT) -> NotebookNode:
    """Run ``nb`` in a fresh kernel in ``folder`` in the grader's mode, every cell even after errors.

    The kernel's own stderr (TensorFlow start-up lines, transport warnings) goes
    to a log that is shown only when the kernel dies.
    """
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(
        nb, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": f"the cell ran longer than {timeout} s",
                          "traceback": [f"CellTimeoutError: the cell ran longer than {timeout} s"]},
        extra_arguments=["--HistoryManager.hist_file=:memory:"],
        resources={"metadata": {"path": str(folder)}},
    )
    log_path = folder.parent / "kernel.log"
    with _quiet_process(), _environment(KERNEL_ENV), open(log_path, "w") as log:
        try:
            client.execute(stdout=log, stderr=log)
        except NoSuchKernel as exc:
            raise CourseError(f"the notebook asks for kernel {exc.name!r}, which is not installed "
                              "(change it with Kernel > Change Kernel)") from None
        except DeadKernelError:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise CourseError(f"the kernel died while running the notebook (out of memory?): {tail[0]}") from None
    return nb


def validate(path: str | Path, timeout: int = CELL_TIMEOUT) -> ValidationReport:
    """Run a copy of ``path`` as the grader would and report every cell that matters."""
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"notebook not found: {path}")
    if path.suffix != ".ipynb":
        raise CourseError(f"{path} is not a notebook (.ipynb)")
    released = read_notebook(path)
    report = ValidationReport(path.resolve())
    with tempfile.TemporaryDirectory(prefix="course-validate-") as tmp:
        work = Path(tmp) / "notebook"
        _copy_folder(path.resolve().parent, work)
        executed = execute(read_notebook(work / path.name), work, timeout)
        report.verdicts = judge(released, executed)
        for name in handin_names(released):
            try:
                report.verdicts.append(Verdict("hand-in", check_handin(work, name)))
            except CourseError as exc:  # not there, or there but not what the grader can use
                status = "INVALID" if (work / name).is_file() else "MISSING"
                report.verdicts.append(Verdict(status, str(exc)))
    return report


def run(notebook: str | Path, out: Callable[[str], None] = print) -> int:
    """Print the report of one notebook, one line per verdict; the exit status of `course validate`."""
    path = Path(notebook)
    if not path.is_file():
        raise CourseError(f"notebook not found: {path}")
    out(f"Checking {path.name}: a copy runs as the grader runs it (no training); your files stay as they are.")
    report = validate(path)
    for verdict in report.verdicts:
        out(verdict.line())
    hidden = len(report.named("hidden"))
    note = f" {hidden} test cell(s) are hidden: they run when graded." if hidden else ""
    if report.ok:
        caveat = " Passing the visible tests does not mean the hidden tests pass." if hidden else ""
        out(f"{path.name}: all visible tests pass.{note}{caveat}")
        return 0
    out(f"{path.name}: not ready to submit (see the lines above).{note}")
    return 1


def _name_for_dialog(cell: NotebookNode, index: int) -> None:
    from nbgrader.utils import compute_checksum

    meta = nbgrader_meta(cell)
    if (meta.get("grade") or meta.get("locked")) and _unchanged(cell):
        cell.source = f"{cell_name(cell, index)} (cell {index + 1})"
        meta["checksum"] = compute_checksum(cell)


def name_cells_for_validate_button(notebook: NotebookNode | None = None, cell: NotebookNode | None = None,
                                   cell_index: int | None = None, **_: object) -> None:
    """nbclient hook (``on_notebook_start`` and ``on_cell_complete``): nbgrader's Validate dialog
    names cells by grade_id.

    nbgrader's Validator reports a failing cell by its whole source (thousands of
    pixels of code in a small dialog). While it runs (``NBGRADER_EXECUTION=validate``)
    this replaces the source of each unchanged graded or read-only cell by its
    name -- markdown cells when the notebook starts, code cells once their code
    has been sent to the kernel -- and refreshes the stored checksum, so the cell
    still counts as unchanged. Edited cells keep their text; other executions
    (autograding) are left alone.
    """
    if os.environ.get(GRADING_VARIABLE) != "validate":
        return
    if notebook is not None:
        _VALIDATING[:] = [notebook]  # for report_cells_for_validate_button
        for index, each in enumerate(notebook.cells):
            if each.cell_type != "code":
                _name_for_dialog(each, index)
    if cell is not None and cell_index is not None and cell.cell_type == "code":
        _name_for_dialog(cell, cell_index)


def _outside_the_tests(cell: NotebookNode) -> bool:
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and not meta.get("grade") and not meta.get("locked")


#: The notebook nbgrader's Validate button is running (set when its kernel starts).
_VALIDATING: list[NotebookNode] = []


def _judge_like_the_grader(cell: NotebookNode, index: int) -> None:
    if cell.cell_type != "code":
        return
    if raised(cell) is None:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                out["name"] = "stdout"
    elif _outside_the_tests(cell) and not cell.source.endswith(RAISED_NOTE):
        cell.source = f"{cell_name(cell, index)}{RAISED_NOTE}"


RAISED_NOTE = ": not a test cell, but it raised (the grader runs it too)"


def report_cells_for_validate_button(notebook: NotebookNode | None = None, cell: NotebookNode | None = None,
                                     cell_index: int | None = None, **_: object) -> None:
    """nbclient hook (``on_cell_start`` and ``on_cell_error``): the Validate dialog judges cells as
    the grader does.

    With ``Validator.validate_all`` nbgrader's dialog also lists code cells outside
    the tests that raised (the grader runs them too, and what depends on them
    fails), but it would also list every cell that merely wrote to stderr
    (TensorFlow's log lines, warnings). The grader's policy is that only raising
    fails a cell: stderr of a cell that did not raise becomes ordinary output, and
    a raising cell outside the tests is named by grade_id (or number and first
    line) and marked as such. nbclient calls ``on_cell_error`` once a cell's outputs
    are complete and ``on_cell_start`` before each cell (then every earlier cell is
    complete); ``notebook=`` judges a whole executed notebook. Only while nbgrader
    validates.
    """
    if os.environ.get(GRADING_VARIABLE) != "validate":
        return
    if notebook is not None:
        for index, each in enumerate(notebook.cells):
            _judge_like_the_grader(each, index)
    elif cell is not None and cell_index is not None:
        if _VALIDATING and cell_index < len(_VALIDATING[0].cells) and _VALIDATING[0].cells[cell_index] is cell:
            for index, each in enumerate(_VALIDATING[0].cells[:cell_index]):
                _judge_like_the_grader(each, index)
        if raised(cell) is not None:
            _judge_like_the_grader(cell, cell_index)


def main(argv: list[str] | None = None) -> int:
    """The edition's `course` command: only `course validate NOTEBOOK`."""
    parser = argparse.ArgumentParser(prog="course", description="Check a notebook before you submit it.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("validate", help="run a copy of the notebook as the grader does and report each cell") \
        .add_argument("notebook")
    args = parser.parse_args(argv)
    return run_command(lambda: run(args.notebook))


if __name__ == "__main__":
    sys.exit(main())
