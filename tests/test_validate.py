"""`course validate`: checks in the grader's mode, names every cell once, changes nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbfactory import cell, make_course, notebook

from dlcourse.runner.notebooks import read_notebook, replace_cell_sources
from dlcourse.validate import (
    Verdict,
    judge,
    name_cells_for_validate_button,
    report_cells_for_validate_button,
)

COURSE = Path(sys.executable).parent / "course"
ANSWER = "YOUR ANSWER HERE"

# A source notebook with what tripped the old validate: identical written-answer
# cells, a test cell whose tests are all hidden, training that overwrites the
# hand-in file unless grading, and cells that raise outside the test cells.
SOURCE = notebook([
    cell("code", "import os\nGRADING = os.environ.get('NBGRADER_EXECUTION') == 'autograde'\n"
                 "print('mode', os.environ.get('NBGRADER_EXECUTION'))", "setup", locked=True),
    cell("code", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
         "double", solution=True),
    cell("code", "assert double(2) == 4, 'double(2) should be 4'", "test_double", grade=True, locked=True,
         points=1),
    cell("code", "# Hidden tests: more values.\n### BEGIN HIDDEN TESTS\nassert double(-3) == -6\n"
                 "### END HIDDEN TESTS", "test_double_reference", grade=True, locked=True, points=2),
    cell("code", "if not GRADING:\n    open('tiny_model.keras', 'wb').write(b'retrained')\n"
                 "    open('tiny.ipynb', 'a').write('touched')\n    raise RuntimeError('training ran')",
         "train"),
    cell("code", "value = 1 / 0  # a slip outside the tests"),
    *[cell("markdown", "Answer key: it doubles.", f"question_{i}", grade=True, solution=True, points=1)
      for i in (1, 2, 3)],
])


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> nbformat.NotebookNode:
    from dlcourse.authoring.release import release

    course = make_course(tmp_path_factory.mktemp("validate") / "course", {"tiny": SOURCE})
    release(course)
    return read_notebook(course.release_notebook("tiny"))


def _outputs(nb, by_index: dict[int, list]) -> nbformat.NotebookNode:
    ran = nbformat.from_dict(nbformat.reads(nbformat.writes(nb), as_version=4))
    for index, outputs in by_index.items():
        ran.cells[index].outputs = [nbformat.from_dict(o) for o in outputs]
    return ran


def _error(ename: str, evalue: str = "") -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}


def test_every_written_answer_is_named_once(released):
    # The three answer cells hold the same text: each must still be reported by its own grade_id.
    assert [c.source for c in released.cells[-3:]] == [ANSWER] * 3
    verdicts = judge(released, _outputs(released, {}))
    assert [v.name for v in verdicts if v.message == "not answered yet"] == \
        ["question_1", "question_2", "question_3"]
    names = [v.name for v in verdicts]
    assert len(names) == len(set(names))


def test_hidden_tests_are_never_ok(released):
    verdicts = {v.name: v for v in judge(released, _outputs(released, {}))}
    assert verdicts["test_double_reference"] == Verdict("hidden", "test_double_reference", "runs when graded")
    assert not verdicts["test_double_reference"].problem


def test_errors_outside_test_cells_are_named(released):
    ran = _outputs(released, {1: [_error("NotImplementedError")], 4: [_error("RuntimeError", "training ran")],
                              5: [_error("ZeroDivisionError", "division by zero")]})
    lines = [v.line() for v in judge(released, ran)]
    assert "  ERROR   double: NotImplementedError (not implemented yet)" in lines
    assert "  ERROR   train: RuntimeError: training ran" in lines
    assert "  ERROR   cell 6 (value = 1 / 0  # a slip outside the tests): ZeroDivisionError: division by zero" \
        in lines


def test_edited_test_cells_and_answers(released):
    edited = replace_cell_sources(released, {"test_double": "pass", "question_2": "It doubles."})
    verdicts = {(v.status, v.name): v.message for v in judge(edited, _outputs(edited, {}))}
    assert verdicts[("CHANGED", "test_double")] == "test cell was edited (it is restored before grading)"
    assert verdicts[("ok", "question_2")] == "answered (graded by hand)"
    assert verdicts[("FAIL", "question_1")] == "not answered yet"


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_validate_runs_a_copy_in_grader_mode_and_changes_nothing(released, tmp_path):
    import keras

    work = tmp_path / "student"
    work.mkdir()
    nb = replace_cell_sources(released, {"double": "def double(x):\n    return x + 2",
                                         "question_1": "It doubles.", "question_2": "Twice.",
                                         "question_3": "x * 2"})
    nb.metadata["dlcourse"] = {"handin": ["tiny_model.keras"]}
    nbformat.write(nb, work / "tiny.ipynb")
    x = keras.Input((3,))
    keras.Model(x, keras.layers.Dense(2, activation="softmax")(x)).save(work / "tiny_model.keras")
    before = _digests(work)
    env = {**os.environ}
    env.pop("NBGRADER_EXECUTION", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    proc = subprocess.run([str(COURSE), "validate", str(work / "tiny.ipynb")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert _digests(work) == before  # notebook and model byte for byte
    assert proc.returncode == 1
    out = proc.stdout.splitlines()
    assert out[1:] == [
        "  ok      test_double",  # double(2) == 4 even for x + 2
        "  hidden  test_double_reference: runs when graded",
        "  ERROR   cell 6 (value = 1 / 0  # a slip outside the tests): ZeroDivisionError: division by zero",
        "  ok      question_1: answered (graded by hand)",
        "  ok      question_2: answered (graded by hand)",
        "  ok      question_3: answered (graded by hand)",
        "  hand-in tiny_model.keras: loads in safe mode; input (None, 3), output (None, 2)",
        "tiny.ipynb: not ready to submit (see the lines above). 1 test cell(s) are hidden: they run when graded.",
    ], proc.stdout
    assert proc.stderr == ""  # no TensorFlow, oneDNN or kernel transport lines


@pytest.mark.slow
def test_validate_button_names_cells_by_grade_id(released, tmp_path):
    """nbgrader's Validator, configured as nbgrader_config.py configures it, names cells by grade_id."""
    from nbgrader.validator import Validator
    from traitlets.config import Config

    nbformat.write(released, tmp_path / "tiny.ipynb")
    config = Config()
    config.Validator.validate_all = True
    config.Execute.on_notebook_start = name_cells_for_validate_button
    config.Execute.on_cell_complete = name_cells_for_validate_button
    config.Execute.on_cell_start = report_cells_for_validate_button
    config.Execute.on_cell_error = report_cells_for_validate_button
    result = Validator(config=config).validate(str(tmp_path / "tiny.ipynb"))
    raised = ": not a test cell, but it raised (the grader runs it too)"
    assert [f["source"] for f in result["failed"]] == [
        "test_double (cell 3)", "train" + raised,
        "cell 6 (value = 1 / 0  # a slip outside the tests)" + raised,
        "question_1 (cell 7)", "question_2 (cell 8)", "question_3 (cell 9)"]
    assert "ZeroDivisionError" in result["failed"][2]["error"]
    assert "changed" not in result


def test_validate_button_fails_cells_that_raise_not_cells_that_log(released, monkeypatch):
    """Outside the tests, the dialog lists a cell that raised, never one that only wrote to stderr."""
    from nbgrader.validator import Validator

    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    noisy = {"output_type": "stream", "name": "stderr", "text": "WARNING: oneDNN custom operations are on\n"}
    ran = _outputs(released, {0: [noisy], 2: [noisy], 5: [_error("ZeroDivisionError", "division by zero"), noisy]})
    report_cells_for_validate_button(notebook=ran)
    assert [o["name"] for o in ran.cells[0].outputs] == ["stdout"]
    assert [o["name"] for o in ran.cells[2].outputs] == ["stdout"]
    assert ran.cells[5].outputs[1]["name"] == "stderr"  # a cell that raised is left as it is
    assert ran.cells[5].source.startswith("cell 6 (value = 1 / 0")
    validator = Validator(validate_all=True)
    failed = [c.source for c in validator._get_failed_cells(ran) if c.cell_type == "code"]
    assert failed == [ran.cells[5].source]  # (and the unanswered written answers, markdown)

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # any other execution: untouched
    again = _outputs(released, {0: [noisy]})
    report_cells_for_validate_button(notebook=again)
    assert again.cells[0].outputs[0]["name"] == "stderr"


def test_the_course_config_wires_the_validate_button():
    from nbgrader.apps import NbGrader

    app = NbGrader()
    app.config_file_paths.append([str(Path(__file__).resolve().parents[1])])
    app.load_config_file()
    assert app.config.Execute.on_notebook_start is name_cells_for_validate_button
    assert app.config.Execute.on_cell_complete is name_cells_for_validate_button
    assert app.config.Execute.on_cell_start is report_cells_for_validate_button
    assert app.config.Execute.on_cell_error is report_cells_for_validate_button
    assert app.config.Validator.validate_all is True
