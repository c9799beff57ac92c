"""Gate 4: typical mistakes lose marks on their own grade_id only; alternatives keep them.

All implementations run through the notebook's own test cells in one kernel;
a batched sample (one submission carrying one mutant per grade_id) also goes
through real nbgrader autograding.
"""

from __future__ import annotations

import shutil
from collections import Counter

import nbformat
import pytest

from dlcourse.course import scratch_course
from dlcourse.examples import reference_handins
from dlcourse.grade import grade
from dlcourse.mutants import (
    catalogue_path,
    judge,
    load_catalogue_module,
    own_tests,
    score_implementations,
)
from dlcourse.notebooks import fill_solutions, nbgrader_meta, read_notebook, replace_cell_sources

pytestmark = pytest.mark.slow
ASSIGNMENTS = ["inception", "residual", "lstm", "unet"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_catalogue_is_large_enough(repo_course, assignment):
    impls = load_catalogue_module(catalogue_path(repo_course, assignment)).IMPLEMENTATIONS
    mutants = Counter(i.grade_id for i in impls if not i.correct)
    correct = Counter(i.grade_id for i in impls if i.correct)
    minimum = {"inception": {"inception_module": (8, 2), "auxiliary_classifier": (3, 2)},
               "residual": {"residual_block": (8, 2), "bottleneck_block": (3, 2), "dense_block": (3, 2)},
               "lstm": {"sigmoid": (2, 2), "lstm_cell_forward": (8, 2), "lstm_forward": (5, 2)},
               "unet": {"build_unet": (8, 2), "receptive_field": (4, 2), "dice_coefficient": (4, 2)}}
    for grade_id, (wrong, right) in minimum[assignment].items():
        assert mutants[grade_id] >= wrong and correct[grade_id] >= right, grade_id


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_implementation_gets_what_it_deserves(repo_course, assignment):
    module = load_catalogue_module(catalogue_path(repo_course, assignment))
    verdicts = score_implementations(repo_course.source_notebook(assignment), module.IMPLEMENTATIONS,
                                     skip=module.SKIP)
    problems = [p for v in verdicts if (p := judge(v, module.DEPENDS_ON))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_batched_mutants_through_nbgrader(repo_course, assignment, tmp_path):
    """One submission with the first mutant of every grade_id, autograded for real."""
    module = load_catalogue_module(catalogue_path(repo_course, assignment))
    first = {}
    for impl in module.IMPLEMENTATIONS:
        if not impl.correct:
            first.setdefault(impl.grade_id, impl)
    source = read_notebook(repo_course.source_notebook(assignment))
    perfect = fill_solutions(read_notebook(repo_course.release_notebook(assignment)), source)
    mutated = replace_cell_sources(perfect, {g: i.source for g, i in first.items()})
    incoming = tmp_path / "incoming"
    for student, nb in (("mutants", mutated), ("perfect", perfect)):
        (incoming / student).mkdir(parents=True)
        nbformat.write(nb, incoming / student / f"{assignment}.ipynb")
        for path in reference_handins(repo_course, assignment):
            shutil.copyfile(path, incoming / student / path.name)
    course = scratch_course(repo_course, tmp_path / "course")
    rows = {r.student: r for r in grade(course, assignment, incoming, timeout=900).rows}
    points = {gid: nbgrader_meta(c).get("points", 0) for c in source.cells
              if (gid := nbgrader_meta(c).get("grade_id")) and nbgrader_meta(c).get("grade")}
    for gid, impl in first.items():
        own = own_tests(gid, rows["mutants"].questions)
        lost = sum(points[t] - (rows["mutants"].questions[t] or 0) for t in own)
        assert lost > 0, f"mutant {impl.name!r} kept every point of {gid}"
    mutated_or_dependent = set(first) | {g for g, deps in module.DEPENDS_ON.items() if deps & set(first)}
    for test, score in rows["mutants"].questions.items():
        if score is not None and not any(test in own_tests(g, [test]) for g in mutated_or_dependent):
            assert score == points[test], f"{test} lost points although its function is correct"
    for test, score in rows["perfect"].questions.items():
        if score is not None:
            assert score == points[test], f"perfect submission lost points in {test}"
