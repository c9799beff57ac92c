"""A practical is found, not registered: its spec, references and mutant catalogue are found by
one convention, the gate fails naming whatever is missing, and the hidden blocks are written
into the source notebook from the spec."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from dlcourse.authoring.check import practical_gate
from dlcourse.authoring.practical import CATALOGUE_FILE, practical, practical_problems, practicals
from dlcourse.authoring.references import spec_problems, write_hidden_blocks
from dlcourse.grading import spec as grading_spec
from dlcourse.grading.practicals import assignment_specs
from dlcourse.grading.spec import HIDDEN_BEGIN, AssignmentSpec, FunctionSpec
from dlcourse.runner.course import CONFIG_NAME, Course
from dlcourse.runner.notebooks import cells_by_grade_id, read_notebook

REPO = Path(__file__).resolve().parents[1]


def _copy(tmp_path: Path, assignment: str = "lstm", as_id: str | None = None) -> Course:
    """A course of one practical, copied from the repository (its trained model left out)."""
    as_id = as_id or assignment
    shutil.copyfile(REPO / CONFIG_NAME, tmp_path / CONFIG_NAME)
    folder = tmp_path / "solutions" / as_id
    shutil.copytree(REPO / "solutions" / assignment, folder, ignore=shutil.ignore_patterns("*.keras"))
    if as_id != assignment:
        (folder / f"{assignment}.ipynb").rename(folder / f"{as_id}.ipynb")
    return Course(tmp_path)


def test_every_practical_is_found_with_its_spec(repo_course: Course):
    found = {p.id: p for p in practicals(repo_course)}
    assert set(found) == set(repo_course.assignment_ids()) == set(assignment_specs())
    for p in found.values():
        assert p.spec is not None and p.spec.assignment == p.id
        assert p.references is not None and p.references.is_file()
        assert p.catalogue == p.folder / CATALOGUE_FILE and p.catalogue.is_file()
        assert practical_problems(p) == [], p.id


def test_the_gate_fails_naming_a_missing_reference_file(tmp_path):
    course = _copy(tmp_path)
    (course.solutions / "lstm" / "hidden_lstm_refs.npz").unlink()
    [gate] = practical_gate(course, "lstm")
    assert not gate.ok and "reference file hidden_lstm_refs.npz is missing" in gate.detail


def test_the_gate_fails_naming_a_missing_catalogue(tmp_path):
    course = _copy(tmp_path)
    (course.solutions / "lstm" / CATALOGUE_FILE).unlink()
    [gate] = practical_gate(course, "lstm")
    assert not gate.ok and f"mutant catalogue {CATALOGUE_FILE} is missing" in gate.detail


def test_the_gate_fails_naming_a_function_without_mutants(tmp_path):
    course = _copy(tmp_path)
    catalogue = course.solutions / "lstm" / CATALOGUE_FILE
    catalogue.write_text(catalogue.read_text() + "\nIMPLEMENTATIONS = [i for i in IMPLEMENTATIONS "
                         "if i.grade_id != 'sigmoid' or i.correct]\n")
    [gate] = practical_gate(course, "lstm")
    assert not gate.ok and "has no mutant of sigmoid" in gate.detail


def test_the_gate_fails_naming_a_missing_spec(tmp_path):
    # graded cells with hidden blocks, but no spec module declares practical "attention"
    course = _copy(tmp_path, "lstm", as_id="attention")
    [gate] = practical_gate(course, "attention")
    assert not gate.ok and "no spec" in gate.detail
    assert "ASSIGNMENT = AssignmentSpec(assignment='attention'" in gate.detail


def test_a_hidden_block_without_a_spec_is_an_error(tmp_path):
    course = _copy(tmp_path)
    path = course.source_notebook("lstm")
    nb = read_notebook(path)
    cell = cells_by_grade_id(nb)["test_lstm_cell_forward"]
    cell.source += f"\n{HIDDEN_BEGIN}\nassert True\n### END HIDDEN TESTS"
    nbformat.write(nb, path)
    [gate] = practical_gate(course, "lstm")
    assert not gate.ok and "test_lstm_cell_forward has a hidden block that no spec" in gate.detail


def test_a_practical_without_graded_cells_needs_nothing(tmp_path):
    course = _copy(tmp_path, "lstm", as_id="reading")
    path = course.source_notebook("reading")
    nb = read_notebook(path)
    nb.cells = [c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade")
                or c.metadata["nbgrader"].get("solution")]
    nbformat.write(nb, path)
    assert practical_problems(practical(course, "reading")) == []


def test_hidden_blocks_are_written_from_the_spec(tmp_path):
    course = _copy(tmp_path)
    path = course.source_notebook("lstm")
    nb = read_notebook(path)
    cells = cells_by_grade_id(nb)
    spec = practical(course, "lstm").spec
    forward = spec.function("lstm_forward")
    cells[forward.test_id].source = cells[forward.test_id].source.replace(forward.hidden_source(), "").rstrip()
    cells[spec.handin.grade_id].source = "# the hand-in's test"
    nbformat.write(nb, path)
    assert spec_problems(course, "lstm")
    assert write_hidden_blocks(course, "lstm", check=True) == [forward.test_id, spec.handin.grade_id]
    assert write_hidden_blocks(course, "lstm") == [forward.test_id, spec.handin.grade_id]
    assert spec_problems(course, "lstm") == []
    assert write_hidden_blocks(course, "lstm") == []
    assert path.read_text() == (REPO / "solutions" / "lstm" / "lstm.ipynb").read_text()


def test_an_assignment_spec_says_its_cells_tests_and_cases(repo_course: Course):
    spec = practical(repo_course, "lstm").spec
    assert spec.cells == ("setup", "sigmoid", "lstm_cell_forward", "lstm_forward")
    sigmoid = spec.function("sigmoid")
    assert (sigmoid.module, sigmoid.name, sigmoid.reference_file) == \
        ("dlcourse.grading.lstm", "SIGMOID", "hidden_lstm_refs.npz")
    assert sigmoid.hidden_source().splitlines()[1] == "from dlcourse.grading.lstm import SIGMOID"
    ids = ["test_lstm_forward", "test_lstm_forward_reference", "test_lstm_forward_params", "test_sigmoid"]
    assert grading_spec.tests_of("lstm_forward", ids) == ids[:3]
    assert spec.tests_of("sigmoid", ids) == ["test_sigmoid"]
    grouped = spec.cases_by_function(practical(repo_course, "lstm").references)
    assert set(grouped) == {"sigmoid", "lstm_cell_forward", "lstm_forward"}
    assert all(c.name.startswith("forward") for c in grouped["lstm_forward"])


def test_a_spec_must_be_a_module_level_name():
    with pytest.raises(TypeError, match="module-level name"):
        AssignmentSpec(assignment="x", module=__name__, reference_file="hidden_x_refs.npz",
                       functions=(FunctionSpec(function="f", select="f", produce=print, describe=str),))
