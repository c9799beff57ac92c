"""The TA's main job end to end: example submissions through real nbgrader."""

from __future__ import annotations

import csv
import shutil

import nbformat
import pytest
from nbfactory import tiny_course, tiny_submission

from dlcourse.authoring.examples import STUDENTS, submissions_dir, sync_examples
from dlcourse.runner.course import scratch_course
from dlcourse.runner.grade import grade

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def examples_graded(repo_course, tmp_path_factory):
    course = scratch_course(repo_course, tmp_path_factory.mktemp("pipeline") / "course")
    source = submissions_dir(repo_course, "inception")
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    result = grade(course, "inception", source, timeout=900)
    after = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    assert before == after, "grading modified the submitted originals"
    return course, result


def test_example_scores(examples_graded):
    _, result = examples_graded
    rows = {row.student: row for row in result.rows}
    assert set(rows) == set(STUDENTS)
    perfect = rows["perfect"]
    assert perfect.questions == {
        "test_conv_params": 2, "test_params_inception": 3,
        "test_inception_module": 2, "test_inception_module_reference": 5,
        "test_auxiliary_classifier": 2, "test_auxiliary_classifier_reference": 3,
        "test_mini_googlenet": 2, "test_mini_googlenet_handin": 5,
        "question_bottleneck": None, "question_auxiliary": None,
    }
    assert perfect.score == 24 and perfect.max_score == 28
    assert perfect.status == "graded, manual pending"
    assert rows["untouched"].score == 0 and rows["untouched"].status == "graded"
    wrong = rows["partly_wrong"].questions
    assert wrong["test_inception_module"] == 2, "the visible test cannot see the concatenation order"
    assert wrong["test_inception_module_reference"] == 0
    assert rows["partly_wrong"].score == 19
    assert rows["broken"].score == 0
    assert "not JSON" in rows["broken"].status


def test_grades_csv(examples_graded):
    _course, result = examples_graded
    with result.csv_path.open() as fh:
        lines = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert lines["perfect"]["score"] == "24" and lines["perfect"]["max_score"] == "28"
    assert lines["untouched"]["score"] == "0"
    assert lines["broken"]["status"].startswith("not graded")
    # Said neutrally: a wrong module fails its hidden test in the notebook and outside it alike.
    assert "test_inception_module_reference" in lines["partly_wrong"]["hidden_tests_failed_in"].split()
    assert lines["perfect"]["hidden_tests_failed_in"] == "" and lines["perfect"]["hidden_test_messages"] == ""
    assert "test_inception_module_reference:" in lines["partly_wrong"]["hidden_test_messages"]
    with result.questions_csv_path.open() as fh:
        per_q = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert per_q["partly_wrong"]["test_conv_params"] == "2"
    assert per_q["partly_wrong"]["test_inception_module_reference"] == "0"
    assert per_q["perfect"]["question_bottleneck"] == ""  # awaits the TA


def test_feedback_written_for_graded_students(examples_graded):
    course, _ = examples_graded
    for student in ("perfect", "untouched", "partly_wrong"):
        html = (course.feedback / student / "inception" / "inception.html").read_text()
        assert "conv_params" in html
    # the broken file's student learns why it scored 0, and what to do
    broken = (course.feedback / "broken" / "inception" / "inception.html").read_text()
    assert "could not be graded" in broken and "What to do" in broken and "conv_params" not in broken


def test_hanging_submission_is_stopped_and_others_unaffected(tmp_path):
    course = tiny_course(tmp_path / "course")
    incoming = tmp_path / "incoming"
    for student, nb in (("ok", tiny_submission(course)),
                        ("hangs", tiny_submission(course, "while True:\n    pass")),
                        ("crashes", tiny_submission(course, "import os\nos._exit(3)"))):
        (incoming / student).mkdir(parents=True)
        nbformat.write(nb, incoming / student / "tiny.ipynb")
    result = grade(course, "tiny", incoming, timeout=30)
    rows = {row.student: row for row in result.rows}
    assert "time limit of 30 s exceeded" in rows["hangs"].status
    assert rows["hangs"].score == 0
    assert rows["ok"].questions["test_double"] == 2
    assert rows["crashes"].questions["test_double"] == 0


def test_committed_examples_match_the_sources(repo_course, tmp_path):
    assert sync_examples(repo_course, "inception", check=True) == []
    # and a stale example is noticed
    copy = tmp_path / "repo"
    shutil.copytree(repo_course.root / "examples", copy / "examples")
    shutil.copytree(repo_course.root / "assignments", copy / "assignments")
    shutil.copyfile(repo_course.root / "nbgrader_config.py", copy / "nbgrader_config.py")
    (copy / "solutions").symlink_to(repo_course.solutions)
    from dlcourse.runner.course import Course

    stale = copy / "examples" / "submissions" / "inception" / "perfect" / "inception.ipynb"
    stale.write_text(stale.read_text().replace("return int(", "return float("))
    assert sync_examples(Course(copy), "inception", check=True) == [
        "examples/submissions/inception/perfect outdated"
    ]
