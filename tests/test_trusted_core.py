"""The functions grades rest on, tested in seconds with adversarial inputs: no nbgrader run, no kernel.

- ``repeat.judge_function``/``judge_handin``/``read_answer``: what the confined job sent back
  is data, never a verdict;
- ``trusted.apply``: a failed hidden test puts an error first in its cell, whatever the
  notebook claimed;
- ``gradebook.trusted_grades``: the autograded notebook's outputs decide, not its metadata;
- ``tamper.scan_notebook``: what a TA is told;
- ``nbgrader_plugins.AutogradeFileCopier``: no hidden file beside a notebook being graded, and
  the student's own model;
- ``sandbox.watch``: time and memory limits hold over a whole process tree.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dlcourse.grading.compare import GradingFailure
from dlcourse.grading.references import Case
from dlcourse.grading.spec import FunctionSpec, HandinContract, Produced, StandIn, isolated
from dlcourse.harness import answer
from dlcourse.runner import repeat, trusted
from dlcourse.runner.gradebook import trusted_grades
from dlcourse.runner.nbgrader_plugins import AutogradeFileCopier
from dlcourse.runner.repeat import Verdict
from dlcourse.runner.sandbox import kill, tree, watch
from dlcourse.runner.tamper import scan_notebook

# --------------------------------------------------------------------------- specs and the repeat

def _double(fn, case: Case) -> Produced:
    return Produced(np.asarray(fn(case.inputs), dtype=np.float64))


def _hint(case: Case):
    return lambda got, expected: ["multiply by two"] if np.allclose(got, expected / 2) else []


SPEC = FunctionSpec(function="double", select="d", produce=_double, describe=lambda c: f"double({c.name})",
                    diagnose=_hint, module=__name__, name="SPEC", reference_file="hidden_refs.npz")
CASES = [Case("d_small", {}, np.arange(3.0), 2 * np.arange(3.0)), Case("d_neg", {}, -np.ones(2), -2 * np.ones(2))]


def _outputs(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {answer.output_key(name): v for name, v in values.items()}


def test_judge_gives_the_checks_message():
    produced = {c.name: c.expected / 2 for c in CASES}
    verdict = repeat.judge_function(SPEC, CASES, _outputs(produced), {})
    with pytest.raises(GradingFailure) as inside:
        SPEC.check(lambda x: x, {c.name: c for c in CASES})
    assert not verdict.passed and verdict.message == str(inside.value)
    assert "multiply by two" in verdict.message and verdict.function == "double"


def test_judge_needs_every_case_and_finite_values():
    first = CASES[0]
    missing = repeat.judge_function(SPEC, CASES, _outputs({first.name: first.expected}), {})
    assert not missing.passed and "d_neg: no output" in missing.message
    nan = repeat.judge_function(SPEC, CASES, _outputs({c.name: c.expected * np.nan for c in CASES}), {})
    assert not nan.passed and "NaN" in nan.message
    passed = repeat.judge_function(SPEC, CASES, _outputs({c.name: c.expected for c in CASES}), {})
    assert passed.passed


def _answer(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_an_answer_that_lies_is_judged_by_its_values():
    """Extra keys and an errors file that says all is well change nothing."""
    data = _answer({answer.ERRORS_FILE: b"{}", answer.CELLS_FILE: json.dumps({SPEC.test_id: "passed"}).encode(),
                    answer.OUTPUTS_FILE: _npz({**_outputs({c.name: np.zeros_like(c.expected) for c in CASES}),
                                               "passed": np.ones(1)})})
    outputs, errors, _cells = repeat.read_answer(data)
    assert not repeat.judge_function(SPEC, CASES, outputs, errors).passed


@pytest.mark.parametrize("data", [
    b"PK\x03\x04 broken",
    _answer({answer.ERRORS_FILE: b"not json"}),
    _answer({answer.ERRORS_FILE: b"[]"}),
    _answer({"verdicts.json": b"{}"}),  # a member that is not part of an answer
    _answer({answer.OUTPUTS_FILE: _npz({"x": np.array([object()], dtype=object)})}),  # pickled objects
])
def test_unreadable_answers_are_refused(data):
    with pytest.raises(ValueError):
        repeat.read_answer(data)


def test_an_oversized_answer_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(repeat, "MAX_ANSWER_BYTES", 1000)
    with pytest.raises(ValueError, match="too large"):
        repeat.read_answer(_answer({answer.OUTPUTS_FILE: _npz({"x": np.zeros(1000)})}))


def test_a_crash_in_the_repeat_is_the_failure_message():
    verdict = repeat.judge_function(SPEC, CASES, {}, {"d_small": "double raised KeyError: 'x'"})
    assert not verdict.passed and verdict.message == "double raised KeyError: 'x'"
    whole = repeat.judge_function(SPEC, CASES, {}, {answer.WHOLE: "the cell double raised SyntaxError"})
    assert not whole.passed and whole.message == "the cell double raised SyntaxError"


def _handin(threshold: float = 0.5) -> HandinContract:
    return HandinContract(grade_id="test_net_handin", module=__name__, name="H", model_file="net_model.keras",
                          data_file="hidden_test.npz",
                          load_split=lambda path: (np.zeros((4, 1)), np.array([0, 1, 1, 0])), num_classes=2,
                          metric="accuracy", score=lambda p, y: float(np.mean(p.argmax(-1) == y)),
                          threshold=threshold)


def test_handin_verdict_is_computed_from_probabilities():
    labels = np.array([0, 1, 1, 0])
    right = np.eye(2)[labels]
    handin = _handin()
    assert repeat.judge_handin(handin, labels, {answer.PREDICTIONS: right}, {}).passed
    wrong = repeat.judge_handin(handin, labels, {answer.PREDICTIONS: right[:, ::-1]}, {})
    assert not wrong.passed and wrong.message == "accuracy on the test split 0.000 is below the threshold 0.50"
    shape = repeat.judge_handin(handin, labels, {answer.PREDICTIONS: right[:2]}, {})
    assert not shape.passed and "shape" in shape.message
    assert not repeat.judge_handin(handin, labels, {}, {}).passed


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


# --------------------------------------------------------------------------- verdicts into the notebook

def test_verdicts_decide_the_test_cells_whatever_the_notebook_claims(template_db, tmp_path):
    url = _gradebook(template_db, tmp_path)
    claim = new_output("execute_result", data={"text/plain": "3"}, execution_count=1)
    nb = new_notebook(cells=[
        _cell("code", "test_f", [claim]),  # claims full marks; its hidden test failed outside
        _cell("code", "test_g", [new_output("stream", name="stdout", text="ok\n")]),  # passed outside too
        _cell("markdown", "question"),
    ])
    trusted.apply(nb, [Verdict("test_f", False, "f(2) returned 3, expected 4", "f"), Verdict("test_g", True),
                       Verdict("question", False, "not a test cell")])
    first = nb.cells[0].outputs[0]
    assert first.output_type == "error" and first.evalue == "f(2) returned 3, expected 4"
    assert nb.cells[1].outputs[-1].text == "Hidden tests: passed\n"
    assert "outputs" not in nb.cells[2]
    nbformat.write(nb, tmp_path / "a.ipynb")
    assert trusted_grades(url, "a", tmp_path / "a.ipynb") == {"test_f": 0.0, "test_g": 2.0, "question": None}


def test_a_numpy_function_keeps_its_visible_points_only_when_its_hidden_test_passes():
    """Inside the notebook, code can borrow Keras to pass visible tests; outside it, where no
    framework is installed, it cannot: the visible tests of such a function follow its hidden one."""
    ok = new_output("stream", name="stdout", text="ok\n")
    nb = new_notebook(cells=[_cell("code", "test_f", [ok]), _cell("code", "test_f_reference"),
                             _cell("code", "test_g", [ok]), _cell("code", "test_g_reference")])
    trusted.apply(nb, [Verdict("test_f_reference", False, "uses keras", "f", without_frameworks=True),
                       Verdict("test_g_reference", False, "output differs", "g")])
    assert nb.cells[0].outputs[0].output_type == "error" and "without Keras" in nb.cells[0].outputs[0].evalue
    assert nb.cells[2].outputs == [ok], "a function that may use frameworks keeps its visible points"


def test_hidden_blocks_are_cut_out_of_the_notebook_the_kernel_runs():
    source = ("x = 1\n### BEGIN HIDDEN TESTS\nassert f(-3) == -6  # the secret\n### END HIDDEN TESTS\n"
              "if True:\n    ### BEGIN HIDDEN TESTS\n    assert f(0) == 0\n    ### END HIDDEN TESTS\ny = 2")
    cut = repeat.without_hidden_tests(source)
    assert "secret" not in cut and "f(0)" not in cut and "BEGIN" not in cut
    assert cut.splitlines() == ["x = 1", repeat.HIDDEN_MARKER, "if True:", "    " + repeat.HIDDEN_MARKER, "y = 2"]
    assert len(repeat.hidden_blocks(source)) == 2


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
def test_no_hidden_file_lies_beside_a_notebook_being_graded_and_models_are_the_students(tmp_path, pattern):
    """nbgrader passes student='*' when a whole class is autograded; each submission still
    gets its own folder."""
    notebooks = _course_tree(tmp_path, ["alice", "bob"])
    hook = AutogradeFileCopier("solutions", "autograded")
    for notebook in notebooks:
        hook(assignment="a", student=pattern, notebooks=[notebook])
    for student in ("alice", "bob"):
        graded = tmp_path / "autograded" / student / "a"
        assert sorted(p.name for p in graded.iterdir()) == ["a_model.keras"]
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


def test_only_processes_of_this_run_are_stopped():
    """Formgrader autogrades inside the Jupyter server: the TA's own kernels must survive."""
    import subprocess

    from dlcourse.runner.nbgrader_plugins import RememberProcesses, StopStudentProcesses

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
