"""The TA's main job end to end: example submissions through real nbgrader."""

from __future__ import annotations

import csv
import shutil

import nbformat
import pytest

from dlcourse.course import scratch_course
from dlcourse.examples import STUDENTS, submissions_dir, sync_examples
from dlcourse.grade import grade
from dlcourse.notebooks import read_notebook, replace_cell_sources

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def warmup_graded(repo_course, tmp_path_factory):
    course = scratch_course(repo_course, tmp_path_factory.mktemp("pipeline") / "course")
    source = submissions_dir(repo_course, "warmup")
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    result = grade(course, "warmup", source, timeout=600)
    after = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    assert before == after, "grading modified the submitted originals"
    return course, result


def test_example_scores(warmup_graded):
    _, result = warmup_graded
    rows = {row.student: row for row in result.rows}
    assert set(rows) == set(STUDENTS)
    perfect = rows["perfect"]
    assert perfect.questions == {"test_conv_params": 3, "test_small_cnn": 4, "question_stacked_kernels": None}
    assert perfect.score == 7 and perfect.max_score == 9
    assert perfect.status == "graded, manual pending"
    assert rows["untouched"].score == 0 and rows["untouched"].status == "graded"
    assert rows["partly_wrong"].questions["test_conv_params"] == 3
    assert rows["partly_wrong"].questions["test_small_cnn"] == 0
    assert rows["broken"].score == 0
    assert "not JSON" in rows["broken"].status


def test_grades_csv(warmup_graded):
    _course, result = warmup_graded
    with result.csv_path.open() as fh:
        lines = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert lines["perfect"]["score"] == "7" and lines["perfect"]["max_score"] == "9"
    assert lines["untouched"]["score"] == "0"
    assert lines["broken"]["status"].startswith("not graded")
    with result.questions_csv_path.open() as fh:
        per_q = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert per_q["partly_wrong"]["test_conv_params"] == "3"
    assert per_q["partly_wrong"]["test_small_cnn"] == "0"
    assert per_q["perfect"]["question_stacked_kernels"] == ""  # awaits the TA


def test_feedback_written_for_graded_students(warmup_graded):
    course, _ = warmup_graded
    for student in ("perfect", "untouched", "partly_wrong"):
        html = (course.feedback / student / "warmup" / "warmup.html").read_text()
        assert "conv_params" in html
    assert not (course.feedback / "broken").exists()


def test_hanging_submission_is_stopped_and_others_unaffected(repo_course, tmp_path):
    course = scratch_course(repo_course, tmp_path / "course")
    incoming = tmp_path / "incoming"
    perfect = read_notebook(submissions_dir(repo_course, "warmup") / "perfect" / "warmup.ipynb")
    hang = replace_cell_sources(perfect, {"conv_params": "while True:\n    pass"})
    for student, nb in (("ok", perfect), ("hangs", hang)):
        (incoming / student).mkdir(parents=True)
        nbformat.write(nb, incoming / student / "warmup.ipynb")
    result = grade(course, "warmup", incoming, timeout=45)
    rows = {row.student: row for row in result.rows}
    assert "time limit of 45 s exceeded" in rows["hangs"].status
    assert rows["hangs"].score == 0
    assert rows["ok"].score == 7


def test_committed_examples_match_the_sources(repo_course, tmp_path):
    assert sync_examples(repo_course, "warmup", check=True) == []
    # and a stale example is noticed
    copy = tmp_path / "repo"
    shutil.copytree(repo_course.root / "examples", copy / "examples")
    shutil.copytree(repo_course.root / "assignments", copy / "assignments")
    shutil.copyfile(repo_course.root / "nbgrader_config.py", copy / "nbgrader_config.py")
    (copy / "solutions").symlink_to(repo_course.solutions)
    from dlcourse.course import Course

    stale = copy / "examples" / "submissions" / "warmup" / "perfect" / "warmup.ipynb"
    stale.write_text(stale.read_text().replace("return int(", "return float("))
    assert sync_examples(Course(copy), "warmup", check=True) == [
        "examples/submissions/warmup/perfect outdated"
    ]
