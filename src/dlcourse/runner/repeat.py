"""Hidden tests, decided outside the student's notebook by a process that holds the references.

Inside a notebook, student code runs in the same interpreter as the tests and controls
everything there: it can patch ``numpy.allclose``, swallow exceptions, or read whatever file
lies beside it. So no hidden test runs in the notebook's kernel at all (its hidden blocks are
removed before it starts), no reference file is ever where student code runs, and the
verdict of every hidden test comes from here:

1. :func:`plan` turns a submission into *jobs* (:mod:`dlcourse.harness.answer`): one per
   graded function (its spec's inputs and weights, never an expected output; the reference
   versions of other graded functions it calls, only there), one for the hand-in model (the
   reserved split's inputs, never its labels), and one that runs the notebook as released
   with the student's answers for hidden tests without a spec.
2. :func:`run_plan` runs them on this process's warm confined servers
   (:mod:`dlcourse.runner.repeat_servers`), which fork a freshly namespaced child per job;
   functions to be written in NumPy go to a server without any framework.
3. :func:`judge` reads each answer as untrusted data, within limits, and compares it with
   the references, which only this process reads: the verdicts carry the same messages as
   the specs' own checks.

Everything here is the TA's side; nbgrader runs it as preprocessors
(:mod:`dlcourse.runner.trusted`), so `course grade`, plain ``nbgrader autograde`` and
formgrader's Autograde decide hidden tests the same way.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from nbformat import NotebookNode

from dlcourse.grading.practicals import assignment_spec
from dlcourse.grading.references import Case, load_cases, save_cases
from dlcourse.grading.spec import (
    HIDDEN_BEGIN,
    HIDDEN_END,
    FunctionSpec,
    HandinContract,
    Produced,
    combine_failures,
)
from dlcourse.harness import answer
from dlcourse.runner import limits, standins
from dlcourse.runner.nbgrader_plugins import read_regular_file
from dlcourse.runner.notebooks import grade_id, nbgrader_meta, strip_markers
from dlcourse.runner.repeat_servers import MAX_ANSWER_BYTES, RepeatUnavailable, pool

#: A handed-in model file read for its job: far above any model the practicals ask for.
MAX_MODEL_BYTES = 512 << 20
_HIDDEN_BLOCK = re.compile(rf"^[ \t]*{re.escape(HIDDEN_BEGIN)}.*?^[ \t]*{re.escape(HIDDEN_END)}[^\n]*\n?",
                           re.MULTILINE | re.DOTALL)
#: What a hidden block reads in the notebook that is graded and in the feedback.
HIDDEN_MARKER = "# (hidden tests: they ran outside your notebook when it was graded)"


@dataclass
class Verdict:
    test_id: str
    passed: bool
    message: str = ""
    function: str = ""  # the contract function tested; "" for a hand-in model or a test cell
    #: the function must be written without frameworks and was graded where none is installed
    without_frameworks: bool = False


# ----------------------------------------------------------------- hidden blocks


def hidden_blocks(source: str) -> list[str]:
    """The hidden-test blocks of a cell's source, markers included."""
    return [m.group(0).rstrip("\n") for m in _HIDDEN_BLOCK.finditer(source)]


def without_hidden_tests(source: str, marker: str = HIDDEN_MARKER) -> str:
    """``source`` with each hidden-test block replaced by one marker line (same indentation)."""
    def keep_indent(match: re.Match) -> str:
        text = match.group(0)
        indent = text[: len(text) - len(text.lstrip(" \t"))]
        return f"{indent}{marker}\n" if marker else ""

    return _HIDDEN_BLOCK.sub(keep_indent, source)


# ----------------------------------------------------------------- what to run


@dataclass
class Job:
    """One unit of the repeat: a zip for the confined side and how its answer is judged."""

    kind: str  # "function", "handin" or "cells"
    server: str  # "framework" or "numpy"
    test_ids: tuple[str, ...]  # graded cells this job decides
    data: bytes
    judge: Callable[[dict[str, np.ndarray], dict[str, str], dict], list[Verdict]]
    name: str = ""


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    #: grade_id -> why a hidden test of that cell cannot be judged (no reference file, ...)
    problems: dict[str, str] = field(default_factory=dict)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    return buffer.getvalue()


def _blank(cases: list[Case]) -> list[Case]:
    """Inputs and weights only: expected outputs and inner-layer outputs stay here."""
    return [replace(c, expected=np.zeros(0, np.float32), probes={k: np.zeros(0, np.float32) for k in c.probes})
            for c in cases]


def _cases_bytes(cases: list[Case]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="dlcourse-cases-") as tmp:
        path = Path(tmp) / answer.CASES_FILE
        save_cases(path, cases)
        return path.read_bytes()


def answer_cells(graded: NotebookNode, solution_ids: set[str]) -> list[list[str]]:
    """The student's code answer cells, in the student's order."""
    return [[gid, cell.source] for cell in graded.cells
            if cell.cell_type == "code" and (gid := grade_id(cell)) in solution_ids]


def _setup_source(source: NotebookNode) -> str:
    for cell in source.cells:
        if grade_id(cell) == "setup":
            return strip_markers(cell.source)
    return ""


def function_job(spec: FunctionSpec, cases: dict[str, Case], setup: str, cells: list[list[str]]) -> Job:
    mine = spec.cases(cases)
    names = [s.name for s in spec.stand_ins]
    job = {"kind": "function", "frameworks": spec.frameworks, "spec": [spec.module, spec.name], "setup": setup,
           "cells": cells, "stand_ins": standins.shipped(names)}
    data = _zip({answer.JOB_FILE: json.dumps(job).encode(), answer.CASES_FILE: _cases_bytes(_blank(mine))})

    def judge_it(outputs: dict[str, np.ndarray], errors: dict[str, str], _cells: dict) -> list[Verdict]:
        return [replace(judge_function(spec, mine, outputs, errors), without_frameworks=not spec.frameworks)]

    return Job("function", "framework" if spec.frameworks else "numpy", (spec.test_id,), data, judge_it,
               spec.function)


def handin_job(contract: HandinContract, source_dir: Path, handed_in: bytes | None) -> Job:
    inputs, labels = contract.load_split(str(source_dir / contract.data_file))
    buffer = io.BytesIO()
    np.save(buffer, inputs, allow_pickle=False)
    files = {answer.JOB_FILE: json.dumps({"kind": "handin", "handin": [contract.module, contract.name]}).encode(),
             answer.INPUTS_FILE: buffer.getvalue()}
    if handed_in is not None:
        files[contract.model_file] = handed_in

    def judge_it(outputs: dict[str, np.ndarray], errors: dict[str, str], _cells: dict) -> list[Verdict]:
        return [judge_handin(contract, labels, outputs, errors)]

    return Job("handin", "framework", (contract.grade_id,), _zip(files), judge_it, contract.model_file)


def cells_job(source: NotebookNode, graded: NotebookNode, solution_ids: set[str], checked: dict[str, str]) -> Job:
    """The notebook as released, the student's answer cells in it, ``checked`` (grade_id ->
    the cell's source with its spec'd hidden blocks removed) run as test cells."""
    answers = dict(answer_cells(graded, solution_ids))
    cells = []
    for cell in source.cells:
        gid = grade_id(cell)
        if cell.cell_type != "code":
            continue
        if gid in solution_ids:
            if gid in answers:
                cells.append([gid, answers[gid], False])
        elif gid in checked:
            cells.append([gid, checked[gid], True])
        else:
            cells.append([gid or "", without_hidden_tests(strip_markers(cell.source), ""), False])
    data = _zip({answer.JOB_FILE: json.dumps({"kind": "cells", "cells": cells}).encode()})

    def judge_it(_outputs: dict[str, np.ndarray], _errors: dict[str, str], verdicts: dict) -> list[Verdict]:
        found = []
        for gid in checked:
            got = verdicts.get(gid) if isinstance(verdicts, dict) else None
            passed = isinstance(got, dict) and got.get("passed") is True
            message = str(got.get("message", ""))[:500] if isinstance(got, dict) else "the test did not run"
            found.append(Verdict(gid, passed, "" if passed else f"hidden test failed: {message}"))
        return found

    return Job("cells", "framework", tuple(checked), data, judge_it, "hidden tests without a spec")


def plan(assignment: str, source_dir: Path, source: NotebookNode, graded: NotebookNode,
         handin_dir: Path | None) -> Plan:
    """The jobs that decide every hidden test of ``graded`` (the notebook nbgrader autogrades,
    test cells as in the gradebook), with the references in ``source_dir``."""
    spec_of = assignment_spec(assignment) if assignment else None
    solution_ids = {gid for c in source.cells if (gid := grade_id(c)) and nbgrader_meta(c).get("solution")}
    setup, cells = _setup_source(source), answer_cells(graded, solution_ids)
    result = Plan()
    specced: dict[str, set[str]] = {}  # test cell -> the hidden blocks decided by specs
    functions = spec_of.functions if spec_of else ()
    path = source_dir / spec_of.reference_file if spec_of else None
    if functions and not path.is_file():
        for spec in functions:
            result.problems[spec.test_id] = f"reference file {spec_of.reference_file} is missing"
    elif functions:
        cases = load_cases(path)
        for spec in functions:
            specced.setdefault(spec.test_id, set()).add(spec.hidden_source())
            result.jobs.append(function_job(spec, cases, setup, cells))
    for contract in [spec_of.handin] if spec_of and spec_of.handin else []:
        specced.setdefault(contract.grade_id, set()).add(contract.hidden_source())
        if not (source_dir / contract.data_file).is_file():
            result.problems[contract.grade_id] = f"reserved split {contract.data_file} is missing"
            continue
        model = None
        if handin_dir is not None:
            with contextlib.suppress(OSError, ValueError):
                model = read_regular_file(handin_dir / contract.model_file, MAX_MODEL_BYTES)
        result.jobs.append(handin_job(contract, source_dir, model))
    checked = {}
    for cell in graded.cells:
        gid = grade_id(cell)
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        plain = [b for b in hidden_blocks(cell.source) if b not in specced.get(gid, set())]
        if plain:
            source_text = cell.source
            for block in specced.get(gid, set()):
                source_text = source_text.replace(block, "")
            checked[gid] = strip_markers(source_text)
    if checked:
        result.jobs.append(cells_job(source, graded, solution_ids, checked))
    return result


# ----------------------------------------------------------------- judging (trusted)


def judge_function(spec: FunctionSpec, cases: list[Case], outputs: dict[str, np.ndarray],
                   errors: dict[str, str]) -> Verdict:
    """The verdict of one graded function's hidden test from its job's outputs: every case, each
    distinct failure named, as :meth:`FunctionSpec.check` says it inside a notebook (a case whose
    call raised is a failure whose message is the error)."""
    if answer.WHOLE in errors:
        return Verdict(spec.test_id, False, errors[answer.WHOLE], spec.function)
    failures = []
    for case in cases:
        output = outputs.get(answer.output_key(case.name))
        if case.name in errors:
            failures.append(errors[case.name])
        elif output is None:
            failures.append(f"case {case.name}: no output")
        else:
            prefix = answer.output_key(case.name, "x")[:-1]
            inner = {k[len(prefix):]: v for k, v in outputs.items() if k.startswith(prefix)}
            failures.append(spec.judge(case, Produced(output, inner)) or "")
    failures = [f for f in failures if f]
    if failures:
        return Verdict(spec.test_id, False, combine_failures(failures), spec.function)
    return Verdict(spec.test_id, True, "", spec.function)


def judge_handin(contract: HandinContract, labels: np.ndarray, outputs: dict[str, np.ndarray],
                 errors: dict[str, str]) -> Verdict:
    if answer.WHOLE in errors:
        return Verdict(contract.grade_id, False, errors[answer.WHOLE])
    if answer.PREDICTIONS not in outputs:
        return Verdict(contract.grade_id, False, "the model gave no predictions")
    passed, message = contract.judge(np.asarray(outputs[answer.PREDICTIONS], dtype=np.float64), labels)
    return Verdict(contract.grade_id, passed, message)


#: What a job's answer may hold: a few members, a bounded size, plain arrays.
MAX_MEMBERS = 4096


def read_answer(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    """A job's answer as data, within limits; ValueError when it is not one."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            if set(infos) - {answer.OUTPUTS_FILE, answer.ERRORS_FILE, answer.CELLS_FILE}:
                raise ValueError("unexpected members in the answer")
            if sum(i.file_size for i in infos.values()) > MAX_ANSWER_BYTES:
                raise ValueError("the answer is too large")
            errors = json.loads(zf.read(infos[answer.ERRORS_FILE])) if answer.ERRORS_FILE in infos else {}
            cells = json.loads(zf.read(infos[answer.CELLS_FILE])) if answer.CELLS_FILE in infos else {}
            raw = zf.read(infos[answer.OUTPUTS_FILE]) if answer.OUTPUTS_FILE in infos else b""
    except (zipfile.BadZipFile, KeyError, RecursionError, OSError, EOFError) as exc:
        raise ValueError(f"the answer is not readable ({type(exc).__name__})") from None
    outputs: dict[str, np.ndarray] = {}
    if raw:
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                if len(npz.files) > MAX_MEMBERS:
                    raise ValueError("too many outputs")
                outputs = {str(k): np.asarray(npz[k]) for k in npz.files}
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ValueError(f"the outputs are not readable ({type(exc).__name__})") from None
    if not isinstance(errors, dict) or not isinstance(cells, dict):
        raise ValueError("the answer's errors are not a mapping")
    return outputs, {str(k)[:200]: str(v)[:2000] for k, v in errors.items()}, cells


# ----------------------------------------------------------------- running jobs


def _failed(job: Job, message: str) -> list[Verdict]:
    return [Verdict(test_id, False, message, job.name if job.kind == "function" else "") for test_id in job.test_ids]


def run_job(job: Job, device: str, env: dict[str, str], budget: limits.Budget | None) -> list[Verdict]:
    """Run ``job`` (again once on a fresh server if its server died) and judge its answer.

    Raises :class:`RepeatUnavailable` when the repeat cannot run here at all.
    """
    for attempt in (1, 2):
        server = pool().server(job.server, device, env)
        try:
            header, out, _log = server.run(job.data, budget)
        except RepeatUnavailable:
            pool().discard(server)
            if budget is not None and (budget.limit or budget.stopped):
                return _failed(job, f"not repeated: {budget.limit or 'grading stopped'}")
            if attempt == 2:
                raise
            continue
        break
    status = str(header.get("status"))
    if budget is not None and (budget.limit or budget.stopped):
        return _failed(job, f"not repeated: {budget.limit or 'grading stopped'}")
    if status == "isolation failed" or status.startswith("server error"):
        raise RepeatUnavailable(f"the {job.server} repeat server could not run a job: {status}")
    if status != "ok":
        return _failed(job, f"repeated outside your notebook: {status}")
    try:
        outputs, errors, cells = read_answer(out)
    except ValueError as exc:
        code = header.get("exit")
        return _failed(job, f"repeated outside your notebook, the code ended without a readable answer "
                            f"(exit {code}: {exc})")
    return job.judge(outputs, errors, cells)


def run_plan(jobs: list[Job], device: str, env: dict[str, str], budget: limits.Budget | None) -> list[Verdict]:
    """Every job of a submission: the framework-free ones beside the others."""
    by_server: dict[str, list[Job]] = {}
    for job in jobs:
        by_server.setdefault(job.server, []).append(job)
    results: dict[str, list[Verdict]] = {}
    failures: list[BaseException] = []

    def run_all(kind: str) -> None:
        try:
            results[kind] = [v for job in by_server[kind] for v in run_job(job, device, env, budget)]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run_all, args=(kind,), daemon=True) for kind in by_server]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [v for kind in sorted(results) for v in results[kind]]

