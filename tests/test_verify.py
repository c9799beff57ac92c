"""One definition per graded function and hand-in: the hidden cells are built from the specs,
the repeat outside the kernel decides every hidden test, and the prose states the contract."""

from __future__ import annotations

import re

from dlcourse.authoring.references import function_specs, handin_contracts, spec_problems
from dlcourse.runner import repeat
from dlcourse.runner.course import Course
from dlcourse.runner.notebooks import grade_id, read_notebook


def test_every_hidden_test_is_decided_by_a_spec_outside_the_kernel(repo_course: Course, practical):
    nb = read_notebook(repo_course.source_notebook(practical))
    hidden = {grade_id(c) for c in nb.cells if "BEGIN HIDDEN TESTS" in c.source}
    plan = repeat.plan(practical, repo_course.solutions / practical, nb, nb, None)
    assert not plan.problems
    assert {job.kind for job in plan.jobs} == {"function", "handin"}, "no hidden test without a spec"
    assert hidden == {t for job in plan.jobs for t in job.test_ids}


def test_hidden_cells_are_built_from_the_specs(repo_course: Course, practical):
    assert spec_problems(repo_course, practical) == []


def test_a_hidden_cell_that_drifts_from_its_spec_is_found(repo_course: Course, tmp_path):
    # a copy of the source notebook (never the repository's), with a hand-edited threshold in
    # the prose and in the hidden cell's summary line, and a hidden cell that checks another function
    text = repo_course.source_notebook("lstm").read_text()
    copy = tmp_path / "solutions" / "lstm" / "lstm.ipynb"
    copy.parent.mkdir(parents=True)
    copy.write_text(text.replace("beat F1 ≥ 0.72", "beat F1 ≥ 0.70", 1)
                    .replace("beat F1 >= 0.72.", "beat F1 >= 0.75.", 1)
                    .replace("LSTM_FORWARD.check(lstm_forward)", "LSTM_FORWARD.check(lstm_cell_forward)", 1))
    (tmp_path / "nbgrader_config.py").write_text("")
    problems = "\n".join(spec_problems(Course(tmp_path), "lstm"))
    assert "0.70" in problems and "test_sequence_models_handin" in problems
    assert "test_lstm_forward_reference" in problems


def test_specs_name_existing_contract_functions(repo_course: Course, practical):
    nb = read_notebook(repo_course.source_notebook(practical))
    ids = {grade_id(c) for c in nb.cells}
    for spec in function_specs(repo_course, practical):
        assert spec.function in ids and spec.test_id in ids, spec.function
        assert re.fullmatch(rf"test_{spec.function}(_\w+)?", spec.test_id)
    for handin in handin_contracts(repo_course, practical):
        assert handin.grade_id in ids
