"""Repeat the hidden tests outside the student's kernel, so tampering cannot pay.

Inside a notebook the student's own cells run in the same interpreter as the
hidden tests: a cell can patch ``numpy.allclose``, the grading library or
IPython's error handling, or read the ``hidden_*`` reference files. Here the
student's contract functions (and handed-in model) run in a separate, confined
process that receives only inputs and weights -- a *challenge* -- and writes
raw outputs. The expected values never enter that process; a trusted process
compares the outputs with them afterwards.

Both sides are built from the same :class:`~dlcourse.grading.spec.FunctionSpec`
and :class:`~dlcourse.grading.spec.HandinContract` as the hidden test cells,
so a verdict here carries the message the student's feedback shows.

The confined process is a child of the repeat server (:mod:`dlcourse.runner.warm`), which calls
:func:`main`; ``python -m dlcourse.runner.verify DIR`` runs it on its own (for debugging).
"""

from __future__ import annotations

import json
import shutil
import sys
import traceback
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dlcourse.grading.references import Case, load_cases, save_cases
from dlcourse.grading.registry import function_specs, handin_contracts, reference_sets
from dlcourse.grading.spec import FunctionSpec, HandinContract, Produced, failure_message
from dlcourse.runner.course import Course
from dlcourse.runner.notebooks import (
    cells_by_grade_id,
    grade_id,
    nbgrader_meta,
    read_notebook,
    strip_markers,
)

CHALLENGE = "challenge.json"
OUTPUTS = "outputs.npz"
ERRORS = "errors.json"


@dataclass
class Verdict:
    test_id: str
    passed: bool
    message: str = ""
    function: str = ""  # the contract function tested; "" for a hand-in model


def write_challenge(course: Course, assignment: str, notebook: Path, handins: list[Path], dest: Path) -> None:
    """Inputs and weights (no expected outputs), the student's contract cells and model files."""
    dest.mkdir(parents=True, exist_ok=True)
    source_cells = cells_by_grade_id(read_notebook(course.source_notebook(assignment)))
    solution_ids = {g for g, c in source_cells.items() if c.cell_type == "code" and nbgrader_meta(c).get("solution")}
    # Every code solution cell, in the student's order: the functions under test
    # are the student's; the other graded functions they call are replaced by
    # reference versions while they run (FunctionSpec.stand_ins).
    setup = source_cells.get("setup")
    spec: dict = {"setup": strip_markers(setup.source) if setup else "", "checks": [], "handins": [],
                  "cells": [[gid, c.source] for c in read_notebook(notebook).cells
                            if (gid := grade_id(c)) in solution_ids and c.cell_type == "code"]}
    for ref in reference_sets(assignment):
        cases = load_cases(course.solutions / assignment / ref.filename)
        # Expected outputs and inner-layer outputs stay behind; the inner layers' names travel.
        blank = [replace(c, expected=np.zeros(0, np.float32),
                         probes={k: np.zeros(0, np.float32) for k in c.probes}) for c in cases.values()]
        save_cases(dest / ref.filename, blank)
        spec["checks"] += [fs.test_id for fs in ref.specs]
    by_name = {p.name: p for p in handins}
    for handin in handin_contracts(assignment):
        inputs, _labels = handin.load_split(str(course.solutions / assignment / handin.data_file))
        np.save(dest / f"inputs_{handin.grade_id}.npy", inputs, allow_pickle=False)
        if handin.model_file in by_name:
            shutil.copyfile(by_name[handin.model_file], dest / handin.model_file)
        spec["handins"].append(handin.grade_id)
    spec["assignment"] = assignment
    (dest / CHALLENGE).write_text(json.dumps(spec, indent=1))


def _key(test_id: str, case: str, layer: str = "") -> str:
    """Name of one array in the outputs file ('/' is kept out of npz member names)."""
    return f"{test_id}__{case}" + (f"__inner__{layer}" if layer else "")


def answer_challenge(folder: Path) -> None:
    """The confined side: run the student's functions on the challenge, save raw outputs."""
    from dlcourse import runtime
    from dlcourse.grading.registry import function_specs, handin_contracts

    runtime.setup()
    spec = json.loads((folder / CHALLENGE).read_text())
    outputs: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    namespace: dict = {"__name__": "__main__"}
    exec(compile(spec["setup"], "<setup>", "exec"), namespace)
    raised = {}
    for cell_id, source in spec["cells"]:
        try:
            exec(compile(source, f"<{cell_id}>", "exec"), namespace)
        except BaseException as exc:
            raised[cell_id] = f"the cell {cell_id} raised {_short(exc)}"
    specs = {fs.test_id: fs for fs in function_specs(spec["assignment"]) if fs.test_id in spec["checks"]}
    for test_id, fs in specs.items():
        function = namespace.get(fs.function)
        if not callable(function):
            errors[test_id] = raised.get(fs.function, f"{fs.function} is not defined")
            continue
        for case in fs.cases(folder / fs.reference_file):
            try:
                produced = fs.run(function, case)
            except BaseException as exc:
                errors[_key(test_id, case.name)] = failure_message(exc)
                continue
            outputs[_key(test_id, case.name)] = np.asarray(produced.output)
            for layer, value in produced.inner.items():
                outputs[_key(test_id, case.name, layer)] = np.asarray(value)
    for handin in handin_contracts(spec["assignment"]):
        if handin.grade_id not in spec["handins"]:
            continue
        inputs = np.load(folder / f"inputs_{handin.grade_id}.npy", allow_pickle=False)
        try:
            outputs[handin.grade_id] = handin.produce(folder / handin.model_file, inputs)
        except BaseException as exc:
            errors[handin.grade_id] = failure_message(exc)
    np.savez(folder / OUTPUTS, **outputs)
    (folder / ERRORS).write_text(json.dumps(errors))


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def read_outputs(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """What the confined process wrote, or None when it is missing or malformed."""
    try:
        errors = json.loads((folder / ERRORS).read_text())
        with np.load(folder / OUTPUTS, allow_pickle=False) as data:
            outputs = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    if not isinstance(errors, dict):
        return None
    return outputs, {str(k): str(v) for k, v in errors.items()}


def judge_function(spec: FunctionSpec, cases: list[Case], outputs: dict[str, np.ndarray],
                   errors: dict[str, str]) -> Verdict:
    """The verdict of one graded function's hidden test, from the confined process's outputs.

    Cases are judged in order and the first failure gives the message, as
    :meth:`FunctionSpec.check` does inside the kernel.
    """
    if spec.test_id in errors:
        return Verdict(spec.test_id, False, errors[spec.test_id], spec.function)
    for case in cases:
        key = _key(spec.test_id, case.name)
        if key in errors:
            return Verdict(spec.test_id, False, errors[key], spec.function)
        output = outputs.get(key)
        if output is None:
            return Verdict(spec.test_id, False, f"case {case.name}: no output", spec.function)
        prefix = _key(spec.test_id, case.name, "x")[:-1]
        inner = {k[len(prefix):]: v for k, v in outputs.items() if k.startswith(prefix)}
        message = spec.judge(case, Produced(output, inner))
        if message:
            return Verdict(spec.test_id, False, message, spec.function)
    return Verdict(spec.test_id, True, "", spec.function)


def judge_handin(handin: HandinContract, labels: np.ndarray, outputs: dict[str, np.ndarray],
                 errors: dict[str, str]) -> Verdict:
    if handin.grade_id in errors:
        return Verdict(handin.grade_id, False, errors[handin.grade_id])
    if handin.grade_id not in outputs:
        return Verdict(handin.grade_id, False, "no output")
    passed, message = handin.judge(np.asarray(outputs[handin.grade_id], dtype=np.float64), labels)
    return Verdict(handin.grade_id, passed, message)


def judge_outputs(course: Course, assignment: str, folder: Path) -> list[Verdict]:
    """Compare what the confined process wrote with the stored references (trusted side)."""
    read = read_outputs(folder)
    if read is None:
        return [Verdict(t, False, "the verification process wrote no readable outputs")
                for t in verified_test_ids(assignment)]
    outputs, errors = read
    verdicts: list[Verdict] = []
    for ref in reference_sets(assignment):
        cases = load_cases(course.solutions / assignment / ref.filename)
        for spec in ref.specs:
            verdicts.append(judge_function(spec, spec.cases(cases), outputs, errors))
    for handin in handin_contracts(assignment):
        _inputs, labels = handin.load_split(str(course.solutions / assignment / handin.data_file))
        verdicts.append(judge_handin(handin, labels, outputs, errors))
    return verdicts


def verified_test_ids(assignment: str) -> list[str]:
    """Hidden test cells this module can repeat outside the kernel."""
    return [s.test_id for s in function_specs(assignment)] + [h.grade_id for h in handin_contracts(assignment)]


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    try:
        answer_challenge(folder)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
