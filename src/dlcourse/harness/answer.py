"""What an isolated child of the repeat server does with one job.

A job is a zip (built by :mod:`dlcourse.runner.repeat`): ``job.json`` says what to do, and
beside it lie the inputs it needs, never an expected output. Three kinds:

- ``function``: run the notebook's setup cell and the student's answer cells, then call one
  graded function on every case of its spec (:class:`dlcourse.grading.spec.FunctionSpec`),
  with the reference versions of the other graded functions it calls in place (shipped in
  the job when they must not be importable anywhere else), and send back its raw outputs.
- ``handin``: load a handed-in model in Keras's safe mode and send back its predictions on
  the reserved inputs (no student cell runs at all).
- ``cells``: run the notebook as released with the student's answer cells in it and say
  which of the named test cells raised (hidden tests that have no spec run here, outside the
  student's notebook).

The answer is a zip too: ``outputs.npz`` (plain arrays), ``errors.json`` and, for ``cells``,
``cells.json``. The trusted side reads it as untrusted data and compares.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

JOB_FILE = "job.json"
CASES_FILE = "cases.npz"
INPUTS_FILE = "inputs.npy"
OUTPUTS_FILE = "outputs.npz"
ERRORS_FILE = "errors.json"
CELLS_FILE = "cells.json"
#: errors.json key of a failure that concerns the whole function, not one case.
WHOLE = "*"
#: Name of the hand-in model's predictions in outputs.npz.
PREDICTIONS = "predictions"


def output_key(case: str, layer: str = "") -> str:
    """The name of one output array: a case's output, or one of its inner layers."""
    return f"{case}__inner__{layer}" if layer else case


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300] if str(exc) else type(exc).__name__


def _find(where: list[str]) -> Any:
    """A spec or contract object named by ``[module, name]`` (a student-side grading module)."""
    module, name = where
    if not module.startswith("dlcourse.grading."):
        raise ValueError(f"not a grading module: {module}")
    return getattr(importlib.import_module(module), name)


def _run_setup(source: str, namespace: dict, frameworks: bool) -> None:
    """The notebook's setup cell (the instructor's code). Without frameworks, each statement
    runs on its own and the ones that need a framework are skipped."""
    if frameworks:
        exec(compile(source, "<setup>", "exec"), namespace)
        return
    for statement in ast.parse(source).body:
        try:
            exec(compile(ast.Module([statement], []), "<setup>", "exec"), namespace)
        except Exception:
            continue


def _run_answers(cells: list[list[str]], namespace: dict) -> dict[str, str]:
    """The student's answer cells, in their order; what each one raised."""
    raised = {}
    for cell_id, source in cells:
        try:
            exec(compile(source, f"<{cell_id}>", "exec"), namespace)
        except BaseException as exc:
            raised[cell_id] = f"the cell {cell_id} raised {_short(exc)}"
    return raised


def _stand_ins(job: dict) -> tuple | None:
    """Reference versions shipped in the job (their source), or None for the spec's own."""
    if not job.get("stand_ins"):
        return None
    from dlcourse.grading.spec import StandIn

    made = []
    for name, function_name, source in job["stand_ins"]:
        scope: dict = {"__name__": "dlcourse_stand_in", "np": np}
        exec(compile(source, f"<reference {name}>", "exec"), scope)
        made.append(StandIn(name, scope[function_name]))
    return tuple(made)


def _setup_runtime(frameworks: bool) -> None:
    from dlcourse import runtime

    if frameworks:
        runtime.setup()
    else:
        np.random.seed(runtime.DEFAULT_SEED)


def function_job(job: dict, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    from dlcourse.grading.spec import failure_message

    spec = _find(job["spec"])
    frameworks = bool(job.get("frameworks", True))
    _setup_runtime(frameworks)
    namespace: dict = {"__name__": "__main__"}
    _run_setup(job.get("setup", ""), namespace, frameworks)
    raised = _run_answers(job["cells"], namespace)
    outputs: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    function = namespace.get(spec.function)
    if not callable(function):
        errors[WHOLE] = raised.get(spec.function, f"{spec.function} is not defined")
        return outputs, errors, {}
    stand_ins = _stand_ins(job)
    for case in spec.cases(folder / CASES_FILE):
        try:
            produced = spec.run(function, case, stand_ins=stand_ins)
            arrays = {output_key(case.name): produced.output,
                      **{output_key(case.name, layer): value for layer, value in produced.inner.items()}}
            arrays = {k: np.asarray(v) for k, v in arrays.items()}
            if any(a.dtype.hasobject for a in arrays.values()):
                raise TypeError("the output is not a numeric array")
        except BaseException as exc:
            errors[case.name] = failure_message(exc)
            continue
        outputs.update(arrays)
    return outputs, errors, {}


def handin_job(job: dict, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    from dlcourse.grading.spec import failure_message

    contract = _find(job["handin"])
    _setup_runtime(True)
    model = folder / contract.model_file
    if not model.is_file():
        return {}, {WHOLE: f"{contract.model_file} was not handed in"}, {}
    inputs = np.load(folder / INPUTS_FILE, allow_pickle=False)
    try:
        return {PREDICTIONS: np.asarray(contract.produce(model, inputs), dtype=np.float32)}, {}, {}
    except BaseException as exc:
        return {}, {WHOLE: failure_message(exc)}, {}


def cells_job(job: dict, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    """The notebook as released with the student's answers; which checked cells raised."""
    from IPython.core.interactiveshell import InteractiveShell

    _setup_runtime(True)
    shell = InteractiveShell.instance()
    verdicts = {}
    for cell_id, source, checked in job["cells"]:
        result = shell.run_cell(source, store_history=False, silent=True)
        if checked:
            error = result.error_before_exec or result.error_in_exec
            verdicts[cell_id] = {"passed": error is None, "message": "" if error is None else _short(error)}
    return {}, {}, verdicts


KINDS = {"function": function_job, "handin": handin_job, "cells": cells_job}


def _unpack(data: bytes, folder: Path) -> None:
    """The job's zip (made by the trusted side) into the job's folder."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            name = Path(info.filename).name
            if name and not info.is_dir():
                (folder / name).write_bytes(zf.read(info))


def _pack(outputs: dict[str, np.ndarray], errors: dict[str, str], cells: dict) -> bytes:
    arrays = io.BytesIO()
    np.savez(arrays, **outputs)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(OUTPUTS_FILE, arrays.getvalue())
        zf.writestr(ERRORS_FILE, json.dumps(errors))
        zf.writestr(CELLS_FILE, json.dumps(cells))
    return buffer.getvalue()


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def main(job_fd: int, out_fd: int, server_kind: str, folder: str) -> int:
    """Run the job read from ``job_fd`` in ``folder``; write the answer to ``out_fd``. The exit code."""
    folder = Path(folder)
    home = folder.parent / "home"
    for made in (folder, home):
        made.mkdir(parents=True, exist_ok=True)
    _unpack(_read_all(job_fd), folder)
    os.environ.update(HOME=str(home), TMPDIR=str(folder.parent), MPLBACKEND="Agg", MPLCONFIGDIR=f"{home}/mpl",
                      KERAS_HOME=f"{home}/keras")
    os.chdir(folder)
    job = json.loads((folder / JOB_FILE).read_text())
    if server_kind == "numpy" and job.get("frameworks", True):
        print("a job that needs a framework reached the framework-free server", file=sys.stderr)
        return 2
    outputs, errors, cells = KINDS[job["kind"]](job, folder)
    data = _pack(outputs, errors, cells)
    view = memoryview(data)
    while view:
        view = view[os.write(out_fd, view):]
    os.close(out_fd)
    sys.stdout.flush()
    sys.stderr.flush()
    return 0
