"""formgrader's Autograde button (nbgrader's own autograde, with the course's configuration)
keeps finished hand grading resolved, as `course grade` does.

nbgrader's SaveAutoGrades marks every hand-graded cell for review on each autograde: on an
unchanged submission the written answer showed "needs manual grade" again in formgrader while
`course grade` counted it as graded. The course's step (``KeepHandGrades``) marks it again only
when the cell's automatic outcome changed or the student handed in again.
"""

from __future__ import annotations

import nbformat
import pytest
from nbfactory import REPO, tiny_course, tiny_submission
from nbgrader.api import Gradebook

from dlcourse.runner import nbgrader_api

pytestmark = pytest.mark.slow

STUDENT = "s1"


def _hand_in(course, body: str | None, timestamp: str) -> None:
    folder = course.submitted / STUDENT / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(tiny_submission(course, body), folder / "tiny.ipynb")
    (folder / "timestamp.txt").write_text(timestamp)


def _register(course) -> None:
    """The assignment in the course's gradebook, as `course grade` or `nbgrader generate_assignment` put it."""
    from dlcourse.runner.grade import register

    if not (course.root / "gradebook.db").exists():
        register(course, "tiny", f"sqlite:///{course.root / 'gradebook.db'}")


def _autograde(course) -> None:
    """What formgrader's Autograde button calls (NbGraderAPI.autograde, force and create)."""
    _register(course)
    result = nbgrader_api.api(course).autograde("tiny", STUDENT, force=True, create=True)
    assert result["success"], result.get("log", "")[-3000:]


def _grades(course) -> dict[str, tuple]:
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        return {g.name: (g.auto_score, g.manual_score, g.needs_manual_grade)
                for g in gb.find_submission_notebook("tiny", "tiny", STUDENT).grades}


def _hand_grade(course, name: str, score: float) -> None:
    """What formgrader's grade handler does when a TA saves a score."""
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        row = gb.find_grade(name, "tiny", "tiny", STUDENT)
        row.manual_score, row.needs_manual_grade = score, False
        gb.db.commit()


def test_autograde_keeps_finished_hand_grading_resolved(tmp_path):
    course = tiny_course(tmp_path / "course")
    _hand_in(course, None, "2026-03-14 09:26:52.000000 UTC")
    _autograde(course)
    assert _grades(course)["question_double"] == (None, None, True), "a written answer waits for a TA"

    _hand_grade(course, "question_double", 1.0)
    _autograde(course)  # the TA presses Autograde again on the unchanged submission
    assert _grades(course) == {"test_double": (2.0, None, False), "question_double": (None, 1.0, False)}

    _hand_grade(course, "test_double", 1.5)  # an override of a test cell stays too
    _autograde(course)
    assert _grades(course) == {"test_double": (2.0, 1.5, False), "question_double": (None, 1.0, False)}


def test_autograde_marks_hand_grading_for_review_when_something_changed(tmp_path):
    course = tiny_course(tmp_path / "course")
    _hand_in(course, None, "2026-03-14 09:26:52.000000 UTC")
    _autograde(course)
    _hand_grade(course, "question_double", 1.0)
    _hand_grade(course, "test_double", 1.5)

    # the automatic outcome of the test cell changed (a bug only the hidden test finds)
    _hand_in(course, "def double(x):\n    return abs(2 * x)", "2026-03-14 09:26:52.000000 UTC")
    _autograde(course)
    assert _grades(course) == {"test_double": (0.0, 1.5, True), "question_double": (None, 1.0, False)}

    # the student handed in again: every hand grade is looked at again
    _hand_grade(course, "test_double", 1.5)
    _hand_in(course, "def double(x):\n    return abs(2 * x)", "2026-03-15 10:00:00.000000 UTC")
    _autograde(course)
    assert _grades(course) == {"test_double": (0.0, 1.5, True), "question_double": (None, 1.0, True)}


def test_the_course_config_uses_the_rule():
    from dlcourse.runner.course import Course
    from dlcourse.runner.nbgrader_plugins import AutogradeFileCopier, KeepHandGrades

    config = nbgrader_api.load_config(Course(REPO))
    steps = config.Autograde.autograde_preprocessors
    assert KeepHandGrades in steps
    assert not [s for s in steps if getattr(s, "__name__", s) in ("SaveAutoGrades",
                                                                   "nbgrader.preprocessors.SaveAutoGrades")]
    hook = config.Autograde.pre_convert_hook
    assert isinstance(hook, AutogradeFileCopier) and hook.db_url == config.CourseDirectory.db_url


def test_autograde_log_shows_what_matters_not_alarms(tmp_path):
    """formgrader's Autograde dialog shows nbgrader's log: on an honest submission it has no
    alarm about test cells holding hidden tests or cells nbgrader does not grade, no cell source,
    and says whether student code ran confined; an edited test cell still warns."""
    from nbfactory import cell

    from dlcourse.runner import sandbox

    course = tiny_course(tmp_path / "course")
    honest = tiny_submission(course)
    honest.cells.insert(1, cell("code", "speed = 'fast'", "speed"))  # a grade_id nbgrader does not grade
    folder = course.submitted / STUDENT / "tiny"
    folder.mkdir(parents=True)
    nbformat.write(honest, folder / "tiny.ipynb")
    _register(course)
    result = nbgrader_api.api(course).autograde("tiny", STUDENT, force=True, create=True)
    log = result.get("log", "")
    assert result["success"], log[-3000:]
    assert "has changed" not in log and "does not exist in the database" not in log, log
    assert "return 2 * x" not in log and "speed = 'fast'" not in log, log  # no cell source
    confined = sandbox.detect().kind == "bubblewrap"
    assert ("runs confined" in log) if confined else ("UNCONFINED" in log), log

    edited = tiny_submission(course)
    next(c for c in edited.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_double").source = "pass"
    nbformat.write(edited, folder / "tiny.ipynb")
    result = nbgrader_api.api(course).autograde("tiny", STUDENT, force=True, create=True)
    assert "Read-only cell test_double was edited" in result.get("log", ""), result.get("log", "")[-3000:]


def test_manage_submissions_notes_say_not_graded_and_late(tmp_path):
    """What the course's server extension adds to formgrader's Manage Submissions page: the
    reason of a hand-in `course grade` could not grade, and how late a hand-in came (the page
    itself is tested in the browser, test_browser.py)."""
    import datetime

    from jinja2 import Environment, FileSystemLoader
    from nbgrader.server_extensions.formgrader import base, handlers

    from dlcourse.runner import gradebook
    from dlcourse.runner.formgrader_notes import SCRIPT, _patch_formgrader_pages, submission_notes
    from dlcourse.runner.grade import register

    course = tiny_course(tmp_path / "course")
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    register(course, "tiny", url)
    with Gradebook(url) as gb:
        gb.update_or_create_assignment("tiny", duedate=datetime.datetime(2026, 3, 15, 12, 0))
        for student, day in (("s1", 14), ("s2", 14), ("s3", 17)):
            gb.add_student(student)
            gb.add_submission("tiny", student, timestamp=datetime.datetime(2026, 3, day, 12, 0))
    gradebook.record_failure(url, "tiny", "s2", "tiny.ipynb is not a valid notebook (not JSON)")
    assert submission_notes(url, "tiny") == {
        "s2": {"reason": "tiny.ipynb is not a valid notebook (not JSON)"}, "s3": {"late": "2.0 days"}}
    assert submission_notes(url, "nope") == {}

    _patch_formgrader_pages()
    _patch_formgrader_pages()  # once only

    class Page:
        def __init__(self) -> None:
            self.settings = {"nbgrader_jinja2_env": Environment(loader=FileSystemLoader([handlers.template_path]))}

    page = base.BaseHandler.render(Page(), "manage_submissions.tpl", base_url="", assignment_id="tiny",
                                   course_dir="", mathjax_url="")
    assert page.count(SCRIPT) == 1 and page.index(SCRIPT) < page.index("</body>")
    other = base.BaseHandler.render(Page(), "manage_assignments.tpl", base_url="", course_dir="",
                                    mathjax_url="", windows=False, course_id="c", exchange="", exchange_missing=False)
    assert SCRIPT not in other


@pytest.mark.parametrize("assignment", ["inception", "residual", "lstm", "unet"])
def test_every_released_test_cell_is_its_source_without_hidden_tests(assignment):
    """What keeps formgrader's log quiet on honest work: restoring a released read-only cell puts
    back exactly its hidden tests, nothing the log should call an edit."""
    from dlcourse.runner.nbgrader_plugins import _without_hidden_tests
    from dlcourse.runner.notebooks import read_notebook

    def locked(path):
        return {c.metadata["nbgrader"]["grade_id"]: c.source for c in read_notebook(path).cells
                if c.metadata.get("nbgrader", {}).get("locked")}

    source = locked(REPO / "solutions" / assignment / f"{assignment}.ipynb")
    released = locked(REPO / "assignments" / assignment / f"{assignment}.ipynb")
    assert source.keys() == released.keys()
    assert any("### BEGIN HIDDEN TESTS" in text for text in source.values())
    for grade_id, text in source.items():
        assert _without_hidden_tests(text).strip() == released[grade_id].strip(), grade_id
