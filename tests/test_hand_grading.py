"""A TA's term, through real nbgrader and a real gradebook: hand grading survives every
regrade, feedback follows it, names and failures reach formgrader, totals go back into a
Canvas export.

One class of the one-function ``tiny`` course, imported from a Canvas-style zip:
``101`` correct, ``102`` with a bug only a later hidden test finds, ``103`` the
untouched release, ``104`` a broken file. The Canvas export lists 101, 103 and
105 (who handed in nothing). The story runs once per module:

1. grade (with the export): 101 waits for a TA, so its Canvas cell is blank;
2. the TA grades 101's written answer by hand (score and comment), as formgrader does;
3. rerun: nothing regraded, 101's feedback rewritten with the new total and the comment;
4. a typo fixed in the source notebook's prose: still nothing regraded;
5. a hidden test added: everyone regraded, 102's total change reported, hand grade kept;
6. ``force``: everyone regraded again, hand grade kept.
"""

from __future__ import annotations

import csv
import zipfile

import nbformat
import pytest
from nbfactory import tiny_course, tiny_submission
from nbformat.v4 import new_markdown_cell
from nbgrader.api import Gradebook

from dlcourse.runner import canvas
from dlcourse.runner.grade import grade
from dlcourse.runner.notebooks import grade_id, read_notebook

pytestmark = pytest.mark.slow

BUGGY = "def double(x):\n    return 0 if x == 5 else 2 * x"
COMMENT = "Clear and correct: doubling, said in one line."
EXPORT = [
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Tiny practical (4711)", "Quiz 1 (4712)"],
    ["    Points Possible", "", "", "", "", "3.00", "10.00"],
    ["Smith, Alice", "101", "s101", "asmith", "8DM50 2026", "", "7.5"],
    ["Vries, Carol de", "103", "s103", "cdevries", "8DM50 2026", "", "9"],
    ["Tanaka, Dave", "105", "s105", "dtanaka", "8DM50 2026", "", ""],
]
ZIP_TIME = (2026, 3, 14, 9, 26, 52)  # zip times have 2-second steps


def _zip(path, course) -> None:
    members = {
        "alicesmith_101_9001_tiny.ipynb": nbformat.writes(tiny_submission(course)),
        "bobjones_LATE_102_9002_tiny.ipynb": nbformat.writes(tiny_submission(course, BUGGY)),
        "carolvries_103_9003_tiny.ipynb": nbformat.writes(tiny_submission(course, "")),
        "erinbrook_104_9004_tiny.ipynb": '{"cells": [',
    }
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_TIME), text)


def _write_export(path) -> None:
    with path.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\r\n").writerows(EXPORT)


def _canvas_rows(course) -> list[list[str]]:
    with (course.grades / "canvas_tiny.csv").open(newline="") as fh:
        return list(csv.reader(fh))


def _hand_grade(course, student: str, score: float, comment: str) -> None:
    """What formgrader's grade and comment handlers do."""
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        grade_row = gb.find_grade("question_double", "tiny", "tiny", student)
        grade_row.manual_score = score
        grade_row.needs_manual_grade = False
        gb.find_comment("question_double", "tiny", "tiny", student).manual_comment = comment
        gb.db.commit()


def _source_edit(course, edit) -> None:
    path = course.source_notebook("tiny")
    nb = read_notebook(path)
    edit(nb)
    nbformat.write(nb, path)


def _add_hidden_test(nb) -> None:
    for cell in nb.cells:
        if grade_id(cell) == "test_double":
            cell.source = cell.source.replace("### END HIDDEN TESTS", "assert double(5) == 10\n### END HIDDEN TESTS")


def _state(course, result) -> dict:
    """What came out of one run: rows, CSVs, the hand grade, feedback, Canvas."""
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        hand = gb.find_grade("question_double", "tiny", "tiny", "101")
        comment = gb.find_comment("question_double", "tiny", "tiny", "101")
        kept = (hand.manual_score, comment.manual_comment, hand.needs_manual_grade)
    with (course.grades / "grades.csv").open() as fh:
        lms = {r["student_id"]: r["tiny"] for r in csv.DictReader(fh)}
    html = course.feedback / "101" / "tiny" / "tiny.html"
    return {"result": result, "rows": {r.student: r for r in result.rows}, "hand": kept, "lms": lms,
            "feedback": html.read_text() if html.exists() else "",
            "canvas": _canvas_rows(course) if (course.grades / "canvas_tiny.csv").exists() else None}


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    root = tmp_path_factory.mktemp("term")
    course = tiny_course(root / "course")
    download, export = root / "submissions.zip", root / "gradebook_export.csv"
    _zip(download, course)
    _write_export(export)
    runs = {}
    runs["first"] = _state(course, grade(course, "tiny", download, timeout=120, workers=2,
                                         canvas_gradebook=export))
    _hand_grade(course, "101", 1.0, COMMENT)
    runs["after_hand_grading"] = _state(course, grade(course, "tiny", timeout=120, canvas_gradebook=export))
    _source_edit(course, lambda nb: nb.cells.insert(0, new_markdown_cell("# A tiny practical\nDouble a number.")))
    runs["typo_fixed"] = _state(course, grade(course, "tiny", timeout=120))
    _source_edit(course, _add_hidden_test)
    runs["hidden_test_added"] = _state(course, grade(course, "tiny", timeout=120, workers=2))
    runs["forced"] = _state(course, grade(course, "tiny", timeout=120, workers=2, force=True,
                                          canvas_gradebook=export))
    return course, runs


def test_first_run_leaves_written_answers_to_the_ta(term):
    _course, runs = term
    rows = runs["first"]["rows"]
    assert rows["101"].score == 2 and rows["101"].questions["question_double"] is None
    assert rows["102"].score == 2 and rows["103"].score == 0
    assert rows["104"].status.startswith("not graded") and "not a valid notebook" in rows["104"].status


def test_hand_grade_survives_typo_fix_hidden_test_change_and_force(term):
    _course, runs = term
    for run in ("after_hand_grading", "typo_fixed", "hidden_test_added", "forced"):
        state = runs[run]
        assert state["hand"] == (1.0, COMMENT, False), run
        assert state["rows"]["101"].score == 3, run
        assert state["lms"]["101"] == "3", run


def test_only_what_can_change_a_grade_regrades(term):
    _course, runs = term
    assert sorted(runs["after_hand_grading"]["result"].skipped) == ["101", "102", "103", "104"]
    assert sorted(runs["typo_fixed"]["result"].skipped) == ["101", "102", "103", "104"], \
        "prose in the source notebook cannot change a grade"
    assert runs["hidden_test_added"]["result"].skipped == []
    assert runs["forced"]["result"].skipped == []


def test_a_regrade_says_whose_totals_changed(term):
    _course, runs = term
    changes = runs["hidden_test_added"]["result"].changes
    assert [(c.student, c.before, c.after) for c in changes] == [("102", 2.0, 0.0)]
    # tiny's hidden asserts have no spec: they run outside the notebook, as released, and fail there
    assert runs["hidden_test_added"]["rows"]["102"].hidden_failed == ["test_double"]
    assert runs["forced"]["result"].changes == []


def test_feedback_follows_hand_grading_without_hidden_tests(term):
    _course, runs = term
    before, after = runs["first"], runs["after_hand_grading"]
    assert COMMENT not in before["feedback"]
    assert "Provisional score: 2.0 / 3.0; 1 answer(s) not graded yet" in before["feedback"]
    assert "Not graded yet (out of 1.0)" in before["feedback"] and "Score: 0.0 / 1.0" not in before["feedback"]
    assert "Provisional" not in after["feedback"] and "Not graded yet" not in after["feedback"]
    assert after["result"].feedback == ["101"], "only the student whose grades changed"
    assert COMMENT in after["feedback"] and "Score: 3.0 / 3.0" in after["feedback"]
    for state in (before, after, runs["forced"]):
        assert "BEGIN HIDDEN TESTS" not in state["feedback"] and "double(-3)" not in state["feedback"]
    assert "double(5)" not in runs["forced"]["feedback"]


def test_canvas_export_filled_when_grading_is_complete(term):
    _course, runs = term
    first, later = runs["first"]["canvas"], runs["after_hand_grading"]["canvas"]
    for filled in (first, later):
        assert len(filled) == len(EXPORT)
        for got, exported in zip(filled, EXPORT, strict=True):
            assert got[:5] == exported[:5] and got[6:] == exported[6:], "other columns as exported"
    assert first[1] == EXPORT[1], "Points Possible row as exported"
    assert [r[5] for r in first[2:]] == ["", "0", ""], "101 waits for a TA, 105 handed in nothing"
    assert [r[5] for r in later[2:]] == ["3", "0", ""]
    report = runs["first"]["result"].canvas
    assert report.column == "Tiny practical (4711)"
    assert report.pending == ["Smith, Alice (101)"] and report.not_submitted == ["Tanaka, Dave (105)"]
    assert report.unknown == ["102", "104"], "graded but not in the export: listed, not dropped"
    assert runs["after_hand_grading"]["result"].canvas.pending == []


def test_formgrader_shows_names_times_and_failures(term):
    course, _runs = term
    from dlcourse.runner import nbgrader_api

    api = nbgrader_api.api(course)
    submissions = {s["student"]: s for s in api.get_submissions("tiny")}
    assert (submissions["101"]["first_name"], submissions["101"]["last_name"]) == ("Alice", "Smith")
    assert (submissions["102"]["first_name"], submissions["102"]["last_name"]) == ("(from file name)", "bobjones")
    assert submissions["101"]["timestamp"].startswith("2026-03-14T09:26:52")
    broken = submissions["104"]
    assert broken["autograded"] and broken["score"] == 0, broken
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        notebook = gb.find_submission_notebook("tiny", "tiny", "104")
        assert notebook.flagged
        assert all("not a valid notebook" in (c.auto_comment or "") for c in notebook.comments)


def test_bad_canvas_exports_are_one_clear_error(tmp_path):
    from dlcourse.errors import CourseError

    path = tmp_path / "export.csv"
    path.write_text("name,score\nx,1\n")
    with pytest.raises(CourseError, match="not a Canvas gradebook export"):
        canvas.read_export(path)
    with pytest.raises(CourseError, match="cannot read"):
        canvas.read_export(tmp_path / "missing.csv")
    _write_export(path)
    export = canvas.read_export(path)
    with pytest.raises(CourseError, match=r"no column of export\.csv starts with 'lstm'"):
        canvas.find_column(export, "lstm")
    with pytest.raises(CourseError, match="--canvas-column: no column 'Tiny'"):
        canvas.find_column(export, "tiny", "Tiny")
    assert canvas.find_column(export, "TINY") == "Tiny practical (4711)"
    assert canvas.split_name("Vries, Carol de") == ("Carol de", "Vries")


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's add_submission autoflush
def test_merge_keeps_hand_grades_and_flags_only_what_changed(tmp_path):
    """The merge rule on a real gradebook, without grading processes."""
    from dlcourse.runner import gradebook
    from dlcourse.runner.grade import register

    course = tiny_course(tmp_path / "course")
    main, private = f"sqlite:///{tmp_path / 'main.db'}", f"sqlite:///{tmp_path / 'private.db'}"
    for url in (main, private):
        register(course, "tiny", url)
    with Gradebook(private) as gb:
        gb.add_student("s1")
        gb.add_submission("tiny", "s1")

    def merge(test_score: float, resubmitted: bool = False) -> list[str]:
        return gradebook.merge_submission(private, main, "tiny", "s1",
                                          {"tiny": {"test_double": test_score, "question_double": None}},
                                          flagged=False, resubmitted=resubmitted)

    def grades() -> dict[str, tuple]:
        with Gradebook(main) as gb:
            return {g.name: (g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade)
                    for g in gb.find_submission_notebook("tiny", "tiny", "s1").grades}

    assert merge(2.0) == []
    with Gradebook(main) as gb:  # the TA: overrides the test cell, grades the answer, adds extra credit
        for name, manual in (("test_double", 1.5), ("question_double", 1.0)):
            row = gb.find_grade(name, "tiny", "tiny", "s1")
            row.manual_score, row.needs_manual_grade = manual, False
        gb.find_grade("question_double", "tiny", "tiny", "s1").extra_credit = 0.5
        gb.db.commit()
    assert merge(2.0) == [] and grades() == {"test_double": (2.0, 1.5, None, False),
                                              "question_double": (None, 1.0, 0.5, False)}
    assert merge(0.0) == ["test_double"], "the automatic outcome changed: review the hand grade"
    assert grades() == {"test_double": (0.0, 1.5, None, True), "question_double": (None, 1.0, 0.5, False)}
    assert sorted(merge(0.0, resubmitted=True)) == ["question_double", "test_double"]
    gradebook.record_failure(main, "tiny", "s1", "time limit of 1 s exceeded")
    assert grades() == {"test_double": (0.0, 1.5, None, True), "question_double": (0.0, 1.0, 0.5, True)}
    assert gradebook.pending_cells(main, "tiny", "s1") == {"tiny": {"test_double": "under review",
                                                                     "question_double": "under review"}}
