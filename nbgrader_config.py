"""nbgrader configuration: this repository is the course directory.

Plain `nbgrader generate_assignment|autograde|generate_feedback|formgrader`
work from the repository root with this file; the `course` command uses it too.
"""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    Execute,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteKernelspec,
)

from dlcourse.runner import nbgrader_plugins

c = get_config()  # noqa: F821 - injected by traitlets
nbgrader_plugins.environment_bin_on_path()

c.CourseDirectory.course_id = "8dm50-dl2"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")

# Reference outputs and reserved test data live beside each source notebook as
# hidden_* files; the reference model a solution trains sits there as
# <assignment>_model.keras. nbgrader's ignore list applies to release, autograde
# and feedback alike, so both are ignored everywhere (never released, never
# copied beside a notebook being graded or into feedback, never copied over a
# student's own model); a pre-convert hook puts the student's own model beside
# the notebook. Only the grader's own process reads the hidden files.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    *nbgrader_plugins.HIDDEN_PATTERNS,
    *nbgrader_plugins.HANDIN_PATTERNS,
    nbgrader_plugins.CATALOGUE_FILE,
]
# nbgrader's own steps before grading, with its restore of test cells logging only real edits
# (a test cell holding hidden tests differs from its release by design).
c.Autograde.sanitize_preprocessors = [
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    nbgrader_plugins.QuietOverwriteCells,
    CheckCellMetadata,
]
c.Autograde.pre_convert_hook = nbgrader_plugins.AutogradeFileCopier(
    source_directory="solutions", autograded_directory="autograded", db_url=c.CourseDirectory.db_url
)

# TensorFlow imports and small training runs take longer than nbgrader's
# 30-second default; the wall-clock limit of a whole submission is
# `course grade --timeout`.
c.Execute.timeout = 300
c.Execute.startup_timeout = 120
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Hidden tests never run in the student's kernel, and no reference file is ever beside it:
# the first step plans their repeat outside the notebook (confined, against references only
# the grader reads) and removes them from the notebook the kernel runs; the step after
# Execute writes the verdicts into the test cells (dlcourse.runner.trusted). Together they
# hold one time and memory budget for all student code of the notebook.
#
# nbgrader zeroes any test cell that wrote to stderr. TensorFlow, Keras and
# NumPy write log lines and warnings there, so the score of a cell would depend
# on log noise. Policy: a test cell fails if and only if it raised; stderr text
# stays visible in the feedback, as ordinary output.
from dlcourse.runner import trusted  # noqa: E402

c.Autograde.autograde_preprocessors = [
    trusted.StartTrusted,
    nbgrader_plugins.RememberProcesses,
    Execute,
    nbgrader_plugins.StopStudentProcesses,
    trusted.FinishTrusted,
    IgnorePattern,
    nbgrader_plugins.StderrIsNotFailure,
    nbgrader_plugins.HideMachinePaths,  # no folder of the grading machine in what students see
    "dlcourse.runner.untrusted.InertNotebook",  # formgrader and feedback show the result: no student script runs
    ClearMetadataPreprocessor,
    LimitOutput,
    nbgrader_plugins.KeepHandGrades,  # SaveAutoGrades, but a finished hand grade stays resolved
    AssignLatePenalties,
    CheckCellMetadata,
]

# Deleted test cells: nbgrader's own OverwriteCells.add_missing_cells fails on
# cells whose nbgrader metadata has no grade_id (nbgrader 0.9.6); `course grade`
# puts deleted test cells back itself (dlcourse.runner.tamper.restore_deleted_tests)
# before nbgrader overwrites every test cell from the gradebook.

# Feedback shows that hidden tests ran and what failed, not their source; and nothing a
# submission wrote runs in the reader's browser (also for notebooks graded before that rule).
c.GenerateFeedback.preprocessors = [
    GetGrades,
    nbgrader_plugins.HideHiddenTests,
    nbgrader_plugins.HideMachinePaths,  # also for notebooks autograded before that step existed
    "dlcourse.runner.untrusted.InertNotebook",
    CSSHTMLHeaderPreprocessor,
]
# Feedback and formgrader's grading page (both nbconvert HTMLExporters) clean HTML once more
# as they render, with the course's allowlist (nbconvert's own would show tables' tags as text).
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {"clean_html": "dlcourse.runner.untrusted.clean_html"}

# --- course validate / the Validate button (student side, dlcourse.validate) ---
# nbgrader's Validate button names a failing cell by its whole source; these
# hooks name it by grade_id instead, and its dialog also lists cells outside the
# tests that raised, judged as the grader judges (stderr alone fails nothing).
# They act only while nbgrader validates. The dialog's note on hidden tests comes
# from the course's lab extension (jupyter/labextensions).
from dlcourse.validate import name_cells_for_validate_button, report_cells_for_validate_button  # noqa: E402

c.Validator.validate_all = True
c.Execute.on_notebook_start = name_cells_for_validate_button
c.Execute.on_cell_complete = name_cells_for_validate_button
c.Execute.on_cell_start = report_cells_for_validate_button
c.Execute.on_cell_error = report_cells_for_validate_button

# --- JupyterLab panels: exchange (dlcourse.lab_exchange); autograde kernel (dlcourse.runner.kernel_sandbox) ---
# Assignments go out and come back through the LMS, never through nbgrader's
# exchange. Its panels (Assignment List, Course List, formgrader) still read it
# on every visit: a per-user folder, created on first use, makes them answer
# "no assignments" instead of showing exchange errors to students.
from dlcourse import lab_exchange  # noqa: E402

c.Exchange.root = lab_exchange.personal_root()
c.ExchangeFactory.list = lab_exchange.PersonalExchangeList

# Every autograde (course grade, plain `nbgrader autograde`, formgrader's
# Autograde button) starts the student's kernel confined in bubblewrap as
# another user (no network, no file of the TA's, no reference file), with a
# working folder of its own; validation keeps the ordinary kernel. Keep this
# after the list of autograde preprocessors.
from dlcourse.runner import kernel_sandbox  # noqa: E402

c.Autograde.autograde_preprocessors = kernel_sandbox.confine_autograde(
    c.Autograde.autograde_preprocessors
)
