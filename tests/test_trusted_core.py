"""The functions grades rest on, tested in seconds with adversarial inputs: no nbgrader run, no kernel.

- ``verify.judge_function``/``judge_handin``/``judge_outputs``: what the confined process wrote
  is data, never a verdict;
- ``gradebook.trusted_grades``: the autograded notebook's outputs decide, not its metadata;
- ``grade.trusted_overrides``: only cells that exist and passed inside the kernel are zeroed;
- ``tamper.scan_notebook``: what a TA is told;
- ``nbgrader_plugins.AutogradeFileCopier``: hidden files come from the source, never the student;
- ``sandbox.watch``: time and memory limits hold over a whole process tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dlcourse.grading.compare import GradingFailure
from dlcourse.grading.references import Case
from dlcourse.grading.spec import FunctionSpec, HandinContract, Produced, StandIn, isolated
from dlcourse.runner import verify
from dlcourse.runner.autograde import Outcome
from dlcourse.runner.grade import trusted_overrides
from dlcourse.runner.gradebook import trusted_grades
from dlcourse.runner.nbgrader_plugins import AutogradeFileCopier
from dlcourse.runner.sandbox import kill, tree, watch
from dlcourse.runner.tamper import scan_notebook
from dlcourse.runner.verify import Verdict

# --------------------------------------------------------------------------- specs and the repeat

def _double(fn, case: Case) -> Produced:
    return Produced(np.asarray(fn(case.inputs), dtype=np.float64))


def _hint(case: Case):
    return lambda got, expected: ["multiply by two"] if np.allclose(got, expected / 2) else []


SPEC = FunctionSpec("double", __name__, "SPEC", "hidden_refs.npz", "d", _double, lambda c: f"double({c.name})",
                    diagnose=_hint)
CASES = [Case("d_small", {}, np.arange(3.0), 2 * np.arange(3.0)), Case("d_neg", {}, -np.ones(2), -2 * np.ones(2))]


def _outputs(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{SPEC.test_id}__{name}": v for name, v in values.items()}


def test_judge_gives_the_checks_message():
    produced = {c.name: c.expected / 2 for c in CASES}
    verdict = verify.judge_function(SPEC, CASES, _outputs(produced), {})
    with pytest.raises(GradingFailure) as inside:
        SPEC.check(lambda x: x, {c.name: c for c in CASES})
    assert not verdict.passed and verdict.message == str(inside.value)
    assert "multiply by two" in verdict.message and verdict.function == "double"


def test_judge_needs_every_case_and_finite_values():
    first = CASES[0]
    missing = verify.judge_function(SPEC, CASES, _outputs({first.name: first.expected}), {})
    assert not missing.passed and "d_neg: no output" in missing.message
    nan = verify.judge_function(SPEC, CASES, _outputs({c.name: c.expected * np.nan for c in CASES}), {})
    assert not nan.passed and "NaN" in nan.message
    passed = verify.judge_function(SPEC, CASES, _outputs({c.name: c.expected for c in CASES}), {})
    assert passed.passed


def test_an_outputs_file_that_lies_is_judged_by_its_values(tmp_path):
    """A verdicts file, extra keys and an errors file that says all is well change nothing."""
    (tmp_path / "verdicts.json").write_text(json.dumps({SPEC.test_id: "passed"}))
    (tmp_path / verify.ERRORS).write_text("{}")
    np.savez(tmp_path / verify.OUTPUTS, **_outputs({c.name: np.zeros_like(c.expected) for c in CASES}),
             passed=np.ones(1))
    outputs, errors = verify.read_outputs(tmp_path)
    assert not verify.judge_function(SPEC, CASES, outputs, errors).passed


@pytest.mark.parametrize("errors", ["[]", "not json", None])
def test_unreadable_outputs_mean_failure(tmp_path, errors):
    if errors is not None:
        (tmp_path / verify.ERRORS).write_text(errors)
    (tmp_path / verify.OUTPUTS).write_bytes(b"PK\x03\x04 broken")
    assert verify.read_outputs(tmp_path) is None


def test_a_crash_in_the_repeat_is_the_failure_message():
    verdict = verify.judge_function(SPEC, CASES, {}, {f"{SPEC.test_id}__d_small": "double raised KeyError: 'x'"})
    assert not verdict.passed and verdict.message == "double raised KeyError: 'x'"


def _handin(threshold: float = 0.5) -> HandinContract:
    return HandinContract("test_net_handin", __name__, "H", "net_model.keras", "hidden_test.npz",
                          lambda path: (np.zeros((4, 1)), np.array([0, 1, 1, 0])), num_classes=2,
                          metric="accuracy", score=lambda p, y: float(np.mean(p.argmax(-1) == y)),
                          threshold=threshold)


def test_handin_verdict_is_computed_from_probabilities():
    labels = np.array([0, 1, 1, 0])
    right = np.eye(2)[labels]
    handin = _handin()
    assert verify.judge_handin(handin, labels, {handin.grade_id: right}, {}).passed
    wrong = verify.judge_handin(handin, labels, {handin.grade_id: right[:, ::-1]}, {})
    assert not wrong.passed and wrong.message == "accuracy on the test split 0.000 is below the threshold 0.50"
    shape = verify.judge_handin(handin, labels, {handin.grade_id: right[:2]}, {})
    assert not shape.passed and "shape" in shape.message
    assert not verify.judge_handin(handin, labels, {}, {}).passed


# --------------------------------------------------------------------------- stand-ins

def test_stand_ins_replace_only_during_the_block_and_are_useless_afterwards():
    namespace: dict = {}
    exec("def helper(x):\n    return -1\n\ndef caller(x):\n    return helper(x) + 1\n", namespace)
    with isolated(namespace["caller"], [StandIn("helper", lambda x: 2 * x)]):
        assert namespace["caller"](3) == 7
        stolen = namespace["helper"]
    assert namespace["caller"](3) == 0, "the student's helper is back"
    with pytest.raises(GradingFailure, match="only available while"):
        stolen(3)


def test_stand_ins_are_restored_when_the_test_fails():
    namespace: dict = {}
    exec("def caller(x):\n    raise ValueError(helper(x))\n", namespace)
    with pytest.raises(ValueError), isolated(namespace["caller"], [StandIn("helper", abs)]):
        namespace["caller"](-2)
    assert "helper" not in namespace


# --------------------------------------------------------------------------- trusted grades

@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """One small gradebook, made once (nbgrader's schema set-up takes seconds)."""
    from nbgrader.api import Gradebook

    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with Gradebook(f"sqlite:///{path}") as gb:
        gb.add_assignment("a")
        gb.add_notebook("a", "a")
        gb.add_grade_cell("test_f", "a", "a", max_score=3, cell_type="code")
        gb.add_source_cell("test_f", "a", "a", cell_type="code", locked=True, checksum="x")
        gb.add_grade_cell("test_g", "a", "a", max_score=2, cell_type="code")
        gb.add_source_cell("test_g", "a", "a", cell_type="code", locked=True, checksum="y")
        gb.add_grade_cell("question", "a", "a", max_score=4, cell_type="markdown")
        gb.add_solution_cell("question", "a", "a")
        gb.add_source_cell("question", "a", "a", cell_type="markdown", locked=False, checksum="z")
    return path


def _gradebook(template: Path, tmp_path: Path) -> str:
    (tmp_path / "gradebook.db").write_bytes(template.read_bytes())
    return f"sqlite:///{tmp_path / 'gradebook.db'}"


def _cell(kind: str, gid: str, outputs=(), points: int = 100):
    cell = new_code_cell("pass") if kind == "code" else new_markdown_cell("my answer")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": gid, "points": points, "solution": False,
                                 "locked": True, "schema_version": 3}
    if kind == "code":
        cell.outputs = list(outputs)
    return cell


def test_trusted_grades_read_outputs_not_claims(template_db, tmp_path):
    url = _gradebook(template_db, tmp_path)
    claim = new_output("execute_result", data={"text/plain": "3"}, execution_count=1)
    error = new_output("error", ename="AssertionError", evalue="wrong", traceback=[])
    nb = new_notebook(cells=[
        _cell("code", "test_f", [claim, error]),  # shows full marks, then raises
        _cell("code", "test_g", [new_output("stream", name="stdout", text="all tests passed")]),
        _cell("code", "test_g", [error]),  # a duplicate that raised
        _cell("code", "test_unknown"),  # no such cell in the gradebook
        _cell("markdown", "question"),
    ])
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, path)
    scores = trusted_grades(url, "a", path)
    assert scores == {"test_f": 0.0, "test_g": 0.0, "question": None}


def test_a_missing_test_cell_scores_zero_and_points_come_from_the_gradebook(template_db, tmp_path):
    url = _gradebook(template_db, tmp_path)
    nbformat.write(new_notebook(cells=[_cell("code", "test_g", points=1000)]), tmp_path / "a.ipynb")
    assert trusted_grades(url, "a", tmp_path / "a.ipynb") == {"test_f": 0.0, "test_g": 2.0, "question": 0.0}


# --------------------------------------------------------------------------- overrides

def test_overrides_zero_only_cells_that_exist_and_passed_inside():
    outcome = Outcome("s", True, verdicts=[
        Verdict("test_f_reference", False, "output differs", "f"),  # passed inside: a disagreement
        Verdict("test_g_reference", False, "output differs", "g"),  # failed inside too: no override
        Verdict("test_nowhere", False, "x", "h"),  # a cell the notebook does not have
        Verdict("test_k_reference", True, "", "k"),
    ])
    scores = {"test_f": 2.0, "test_f_reference": 5.0, "test_g_reference": 0.0, "test_g": 2.0,
              "test_k_reference": 4.0, "test_fx": 1.0}
    overridden = {o.cell: o.score for o in trusted_overrides(outcome, scores)}
    assert overridden == {"test_f": 0.0, "test_f_reference": 0.0}


# --------------------------------------------------------------------------- tamper scan

def test_tamper_scan_names_what_it_finds():
    source = new_notebook(cells=[_cell("code", "test_f")])
    source.cells[0].source = "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS"
    submitted = new_notebook(cells=[
        new_code_cell("import numpy as np\nnp.allclose = lambda *a, **k: True"),
        new_code_cell("import dlcourse.grading.spec as s\nsetattr(s.FunctionSpec, 'check', print)"),
        new_code_cell("data = open('hidden_refs.npz', 'rb').read()"),
        new_code_cell("get_ipython().set_custom_exc((Exception,), lambda *a: None)"),
    ])
    findings = "\n".join(scan_notebook(submitted, source))
    for needle in ("np.allclose (monkeypatching)", "setattr", "hidden files", "set_custom_exc",
                   "test cell test_f was deleted"):
        assert needle in findings, findings


# --------------------------------------------------------------------------- hidden files

def _course_tree(root: Path, students: list[str]) -> list[str]:
    (root / "solutions" / "a").mkdir(parents=True)
    (root / "solutions" / "a" / "hidden_refs.npz").write_bytes(b"the real references")
    (root / "solutions" / "a" / "a_model.keras").write_bytes(b"the instructor's model")
    notebooks = []
    for student in students:
        folder = root / "submitted" / student / "a"
        folder.mkdir(parents=True)
        (folder / "a.ipynb").write_text("{}")
        (folder / "hidden_refs.npz").write_bytes(b"forged by " + student.encode())
        (folder / "a_model.keras").write_bytes(b"model of " + student.encode())
        notebooks.append(str(folder / "a.ipynb"))
    return notebooks


@pytest.mark.parametrize("pattern", ["alice", "*"])
def test_hidden_files_come_from_the_source_and_models_from_the_student(tmp_path, pattern):
    """nbgrader passes student='*' when a whole class is autograded; each submission still
    gets its own folder."""
    notebooks = _course_tree(tmp_path, ["alice", "bob"])
    hook = AutogradeFileCopier("solutions", "autograded")
    for notebook in notebooks:
        hook(assignment="a", student=pattern, notebooks=[notebook])
    for student in ("alice", "bob"):
        graded = tmp_path / "autograded" / student / "a"
        assert (graded / "hidden_refs.npz").read_bytes() == b"the real references"
        assert (graded / "a_model.keras").read_bytes() == b"model of " + student.encode()
    assert not (tmp_path / "autograded" / "*").exists()


# --------------------------------------------------------------------------- limits

def _watched(code: str, timeout: float | None, memory_bytes: int | None):
    """Start ``code`` in a child, watch its process tree, stop it at a limit as the grader does."""
    proc = subprocess.Popen([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"},
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    root = psutil.Process(proc.pid)
    watched = watch(lambda: tree(root), lambda: proc.poll() is not None, timeout, memory_bytes)
    if watched.limit:
        kill(tree(root))
    out = proc.communicate()[0]
    return watched, proc.returncode, out


def test_time_limit_stops_a_hanging_child():
    watched, _code, _out = _watched("import time\ntime.sleep(60)", timeout=1.0, memory_bytes=None)
    assert watched.limit.startswith("time limit of 1 s") and watched.seconds < 10


def test_memory_limit_counts_the_whole_process_tree():
    hog = ("import subprocess, sys, time\n"
           "code = 'import numpy as np, time; a = np.ones(2**27); time.sleep(30)'\n"
           "subprocess.Popen([sys.executable, '-c', code])\ntime.sleep(30)")
    watched, _code, _out = _watched(hog, timeout=60, memory_bytes=2**29)
    assert watched.limit.startswith("memory limit of 0.5 GB") and watched.seconds < 30
    assert watched.peak_memory > 2**29


def test_an_honest_child_is_left_alone():
    watched, code, out = _watched("print('done')", timeout=30, memory_bytes=2**30)
    assert watched.limit == "" and code == 0 and out.strip() == "done"


def test_outside_course_grade_only_processes_of_this_run_are_stopped(monkeypatch):
    """Formgrader autogrades inside the Jupyter server: the TA's own kernels must survive."""
    import subprocess

    from dlcourse.runner.nbgrader_plugins import RememberProcesses, StopStudentProcesses

    monkeypatch.delenv("DLCOURSE_CONFINED", raising=False)
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    tas_kernel = subprocess.Popen(sleep)
    try:
        nb = new_notebook()
        _nb, resources = RememberProcesses().preprocess(nb, {})
        students = subprocess.Popen(sleep, start_new_session=True)  # started while the notebook ran
        StopStudentProcesses().preprocess(nb, resources)
        students.wait(timeout=10)  # a 60-second sleep that ends now was stopped
        assert tas_kernel.poll() is None, "the TA's kernel is still running"
    finally:
        tas_kernel.kill()
        tas_kernel.wait()
