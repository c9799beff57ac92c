"""Gate 4: typical mistakes lose marks on their own grade_id only; alternatives keep them.

All implementations run through the notebook's own test cells in one kernel;
a batched sample (one submission carrying one mutant per grade_id) also goes
through real nbgrader autograding, by `course grade` and by plain whole-class
`nbgrader autograde`.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from dlcourse.authoring.examples import reference_handins
from dlcourse.authoring.mutants import judge, score_implementations
from dlcourse.authoring.practical import catalogue_path, load_catalogue_module
from dlcourse.authoring.practical import practical as find_practical
from dlcourse.grading import spec as grading_spec
from dlcourse.runner.course import scratch_course
from dlcourse.runner.grade import grade
from dlcourse.runner.notebooks import (
    fill_solutions,
    nbgrader_meta,
    read_notebook,
    replace_cell_sources,
)
from dlcourse.runner.notebooks import grade_id as grade_id_of

pytestmark = pytest.mark.slow
#: Stronger minimums for the course's own practicals; any other needs two mutants and one
#: alternative per graded function.
MINIMUM = {"inception": {"inception_module": (8, 2), "auxiliary_classifier": (3, 2)},
           "residual": {"residual_block": (8, 2), "bottleneck_block": (3, 2), "dense_block": (3, 2)},
           "lstm": {"sigmoid": (2, 2), "lstm_cell_forward": (8, 2), "lstm_forward": (5, 2)},
           "unet": {"build_unet": (8, 2), "receptive_field": (4, 2), "dice_coefficient": (4, 2)}}


def test_catalogue_is_large_enough(repo_course, practical):
    impls = load_catalogue_module(catalogue_path(repo_course, practical)).IMPLEMENTATIONS
    mutants = Counter(i.grade_id for i in impls if not i.correct)
    correct = Counter(i.grade_id for i in impls if i.correct)
    spec = find_practical(repo_course, practical).spec
    minimum = MINIMUM.get(practical) or {f.function: (2, 1) for f in (spec.functions if spec else ())}
    for grade_id, (wrong, right) in minimum.items():
        assert mutants[grade_id] >= wrong and correct[grade_id] >= right, grade_id


def test_every_implementation_gets_what_it_deserves(repo_course, practical):
    module = load_catalogue_module(catalogue_path(repo_course, practical))
    verdicts = score_implementations(repo_course.source_notebook(practical), module.IMPLEMENTATIONS,
                                     skip=module.SKIP)
    problems = [p for v in verdicts if (p := judge(v, module.DEPENDS_ON))]
    assert not problems, "\n".join(problems)


def _place(folder: Path, practical: str, nb, handins: list[Path]) -> None:
    """A submission: the notebook and the hand-in files, in ``folder``."""
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{practical}.ipynb")
    for path in handins:
        shutil.copyfile(path, folder / path.name)


def _plain_nbgrader_scores(course, practical: str) -> dict[str, dict[str, float | None]]:
    """`nbgrader generate_assignment` and whole-class `nbgrader autograde`, as nbgrader's docs teach."""
    from nbgrader.api import Gradebook

    from dlcourse.runner import nbgrader_api

    for args in (["generate_assignment", practical, "--force"], ["autograde", practical, "--create"]):
        proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course.root, capture_output=True,
                              text=True, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
    scores = {}
    with Gradebook(nbgrader_api.load_config(course).CourseDirectory.db_url) as gb:
        for submission in gb.find_assignment(practical).submissions:
            notebook = gb.find_submission_notebook(practical, practical, submission.student.id)
            scores[submission.student.id] = {g.name: (g.auto_score if g.auto_score is not None else None)
                                             for g in notebook.grades}
    return scores


def test_one_wrong_function_per_grade_id_through_nbgrader(repo_course, practical, tmp_path):
    """One submission with the first mutant of every grade_id, the solution's other functions
    calling the wrong ones: each mistake costs marks on its own grade_id only, through
    `course grade` and through plain nbgrader for the whole class, and both give the same
    scores; two perfect submissions get every automatic point from whole-class nbgrader."""
    module = load_catalogue_module(catalogue_path(repo_course, practical))
    first = {}
    for impl in module.IMPLEMENTATIONS:
        if not impl.correct:
            first.setdefault(impl.grade_id, impl)
    source = read_notebook(repo_course.source_notebook(practical))
    perfect = fill_solutions(read_notebook(repo_course.release_notebook(practical)), source)
    mutated = replace_cell_sources(perfect, {g: i.source for g, i in first.items()})
    handins = reference_handins(repo_course, practical)
    points = {gid: nbgrader_meta(c).get("points", 0) for c in source.cells
              if (gid := nbgrader_meta(c).get("grade_id")) and nbgrader_meta(c).get("grade")}
    automatic = {gid for gid, c in ((nbgrader_meta(c).get("grade_id"), c) for c in source.cells)
                 if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}
    built_on = {g for g, deps in module.DEPENDS_ON.items() if deps & set(first)}

    incoming = tmp_path / "incoming"
    _place(incoming / "mutants", practical, mutated, handins)
    course = scratch_course(repo_course, tmp_path / "course")
    graded = {r.student: r for r in grade(course, practical, incoming, timeout=900).rows}["mutants"].questions

    plain_course = scratch_course(repo_course, tmp_path / "plain")
    for student, nb in (("mutants", mutated), ("perfect_a", perfect), ("perfect_b", perfect)):
        _place(plain_course.submitted / student / practical, practical, nb, handins)
    plain = _plain_nbgrader_scores(plain_course, practical)

    for name, scores in (("course grade", graded), ("plain nbgrader", plain["mutants"])):
        for gid, impl in first.items():
            lost = sum(points[t] - (scores[t] or 0) for t in grading_spec.tests_of(gid, scores))
            assert lost > 0, f"{name}: mutant {impl.name!r} kept every point of {gid}"
        for test in automatic:
            if not any(test in grading_spec.tests_of(g, [test]) for g in set(first) | built_on):
                assert scores[test] == points[test], f"{name}: {test} lost points although its function is correct"
    assert {t: graded[t] for t in automatic} == {t: plain["mutants"][t] for t in automatic}
    for student in ("perfect_a", "perfect_b"):
        lost = {t: plain[student][t] for t in automatic if plain[student][t] != points[t]}
        assert not lost, f"whole-class nbgrader: {student} lost points in {lost}"
    # The TA's CSV gives each failed hidden test the message the student's feedback shows (cells that
    # hold only hidden tests: elsewhere a visible assert may fail first).
    with open(course.grades / f"{practical}.csv") as fh:
        listed = next(csv.DictReader(fh))["hidden_test_messages"]
    shown = {grade_id_of(c): next(o.evalue for o in c.outputs if o.output_type == "error")
             for c in read_notebook(course.autograded / "mutants" / practical / f"{practical}.ipynb").cells
             if c.cell_type == "code" and (grade_id_of(c) or "").endswith(("_reference", "_handin"))
             and any(o.output_type == "error" for o in c.get("outputs", []))}
    assert shown, "no hidden test failed"
    for test, message in shown.items():
        assert f"{test}: {message}" in listed, (test, message, listed)
