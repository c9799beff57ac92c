"""The library hidden and visible tests use to score student code.

One idea per module: ``policy`` (numbers: float32, TF32 off, tolerance),
``references`` (stored reference cases), ``weights`` (reference weights into
the student's layers by name), ``compare`` (a verdict with a message that says
what is wrong), ``spec`` (how a graded function or hand-in is checked) and one spec
module per practical, which declares ``ASSIGNMENT`` and is found by ``practicals``.
"""

from dlcourse.grading.compare import GradingFailure, assert_matches
from dlcourse.grading.policy import TOLERANCE, grading_mode, relative_error
from dlcourse.grading.references import Case, load_cases, save_cases
from dlcourse.grading.weights import load_reference_weights

__all__ = [
    "TOLERANCE",
    "Case",
    "GradingFailure",
    "assert_matches",
    "grading_mode",
    "load_cases",
    "load_reference_weights",
    "relative_error",
    "save_cases",
]
