"""Repeat the hidden tests outside the student's kernel, so tampering cannot pay.

Inside a notebook the student's own cells run in the same interpreter as the
hidden tests: a cell can patch ``numpy.allclose``, the grading library or
IPython's error handling, or read the ``hidden_*`` reference files. Here the
student's contract functions (and handed-in model) run in a separate, confined
process that receives only inputs and weights -- a *challenge* -- and writes
raw outputs. The expected values never enter that process; a trusted process
compares the outputs with them afterwards.

Run as a module it is that confined process: ``python -m dlcourse.verify DIR``.
"""

from __future__ import annotations

import json
import shutil
import sys
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dlcourse.course import Course
from dlcourse.grading.policy import TOLERANCE, relative_error
from dlcourse.grading.references import Case, load_cases, save_cases
from dlcourse.grading.registry import handin_checks, reference_sets
from dlcourse.notebooks import (
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
    # Every code solution cell, in the student's order: a contract function may
    # call the student's other functions (lstm_forward its lstm_cell_forward).
    setup = source_cells.get("setup")
    spec: dict = {"setup": strip_markers(setup.source) if setup else "", "checks": [], "handins": [],
                  "cells": [[gid, c.source] for c in read_notebook(notebook).cells
                            if (gid := grade_id(c)) in solution_ids and c.cell_type == "code"]}
    for ref in reference_sets(assignment):
        cases = load_cases(course.solutions / assignment / ref.filename)
        blank = [replace(c, expected=np.zeros(0, np.float32), probes={}) for c in cases.values()]
        save_cases(dest / ref.filename, blank)
        for check in ref.checks:
            spec["checks"].append({"test_id": check.test_id, "function": check.function,
                                   "file": ref.filename, "select": check.select})
    by_name = {p.name: p for p in handins}
    for handin in handin_checks(assignment):
        inputs, _labels = handin.load(str(course.solutions / assignment / handin.data_file))
        np.save(dest / f"inputs_{handin.test_id}.npy", inputs, allow_pickle=False)
        if handin.model_file in by_name:
            shutil.copyfile(by_name[handin.model_file], dest / handin.model_file)
        spec["handins"].append({"test_id": handin.test_id, "model_file": handin.model_file,
                                "num_classes": handin.num_classes})
    (dest / CHALLENGE).write_text(json.dumps(spec, indent=1))


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def answer_challenge(folder: Path) -> None:
    """The confined side: run the student's functions on the challenge, save raw outputs."""
    from dlcourse import runtime

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
    functions = {}
    for name in {check["function"] for check in spec["checks"]}:
        if callable(namespace.get(name)):
            functions[name] = namespace[name]
        else:
            errors[name] = raised.get(name, f"{name} is not defined")
    from dlcourse.grading import registry

    produce = {c.test_id: c.produce for ref in registry.REFERENCE_SETS for c in ref.checks}
    for check in spec["checks"]:
        if check["function"] not in functions:
            continue
        for case in load_cases(folder / check["file"]).values():
            if not case.name.startswith(check["select"]):
                continue
            key = f"{check['test_id']}/{case.name}"
            try:
                outputs[key] = np.asarray(produce[check["test_id"]](functions[check["function"]], case),
                                          dtype=np.float64)
            except BaseException as exc:
                errors[key] = _short(exc)
    from dlcourse.grading.handin import load_handin, predict_probabilities

    for handin in spec["handins"]:
        key = handin["test_id"]
        inputs = np.load(folder / f"inputs_{key}.npy", allow_pickle=False)
        try:
            model = load_handin(folder / handin["model_file"], inputs.shape[1:], handin["num_classes"])
            outputs[key] = predict_probabilities(model, inputs)
        except BaseException as exc:
            errors[key] = _short(exc)
    np.savez(folder / OUTPUTS, **{k.replace("/", "__"): v for k, v in outputs.items()})
    (folder / ERRORS).write_text(json.dumps(errors))


def _read_outputs(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    try:
        errors = json.loads((folder / ERRORS).read_text())
        with np.load(folder / OUTPUTS, allow_pickle=False) as data:
            outputs = {k.replace("__", "/"): np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError):
        return None
    if not isinstance(errors, dict):
        return None
    return outputs, {str(k): str(v) for k, v in errors.items()}


def judge_outputs(course: Course, assignment: str, folder: Path) -> list[Verdict]:
    """Compare what the confined process wrote with the stored references (trusted side)."""
    read = _read_outputs(folder)
    verdicts: list[Verdict] = []
    if read is None:
        return [Verdict(t, False, "the verification process wrote no readable outputs")
                for t in verified_test_ids(assignment)]
    outputs, errors = read
    for ref in reference_sets(assignment):
        cases = load_cases(course.solutions / assignment / ref.filename)
        for check in ref.checks:
            if check.function in errors:
                verdicts.append(Verdict(check.test_id, False, errors[check.function], check.function))
                continue
            verdict = _judge_cases(check.test_id, [c for c in cases.values() if c.name.startswith(check.select)],
                                   outputs, errors)
            verdict.function = check.function
            verdicts.append(verdict)
    for handin in handin_checks(assignment):
        if handin.test_id in errors or handin.test_id not in outputs:
            verdicts.append(Verdict(handin.test_id, False, errors.get(handin.test_id, "no output")))
            continue
        _inputs, labels = handin.load(str(course.solutions / assignment / handin.data_file))
        probs = outputs[handin.test_id]
        if probs.shape[:-1] != labels.shape:
            verdicts.append(Verdict(handin.test_id, False, f"predictions of shape {probs.shape}"))
            continue
        score = handin.score(probs, labels)
        verdicts.append(Verdict(handin.test_id, score >= handin.threshold,
                                f"score {score:.3f}, threshold {handin.threshold:.2f}"))
    return verdicts


def _judge_cases(test_id: str, cases: list[Case], outputs: dict[str, np.ndarray],
                 errors: dict[str, str]) -> Verdict:
    for case in cases:
        key = f"{test_id}/{case.name}"
        if key in errors:
            return Verdict(test_id, False, f"case {case.name}: {errors[key]}")
        got = outputs.get(key)
        if got is None:
            return Verdict(test_id, False, f"case {case.name}: no output")
        if got.shape != case.expected.shape or not np.all(np.isfinite(got)) \
                or relative_error(got, case.expected) > TOLERANCE:
            return Verdict(test_id, False, f"case {case.name}: output differs from the reference")
    return Verdict(test_id, True)


def verified_test_ids(assignment: str) -> list[str]:
    """Hidden test cells this module can repeat outside the kernel."""
    ids = [c.test_id for r in reference_sets(assignment) for c in r.checks]
    return ids + [h.test_id for h in handin_checks(assignment)]


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
