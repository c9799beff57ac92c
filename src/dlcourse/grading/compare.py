"""Verdicts with messages that say what is wrong."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dlcourse.grading.policy import TOLERANCE, relative_error


class GradingFailure(AssertionError):
    """A test verdict: the student's output is wrong, and the message says how."""


def call_student(what: str, fn: Callable, *args, **kwargs):
    """Call the student's function; its exception becomes a verdict naming the call."""
    try:
        return fn(*args, **kwargs)
    except GradingFailure:
        raise
    except Exception as exc:
        raise GradingFailure(f"{what} raised {type(exc).__name__}: {exc}") from exc


def assert_matches(
    got,
    expected,
    what: str,
    diagnose: Callable[[np.ndarray, np.ndarray], list[str]] | None = None,
    tolerance: float = TOLERANCE,
) -> float:
    """Fail unless ``got`` equals ``expected`` within the policy's tolerance.

    ``diagnose(got, expected)`` may name the part that is wrong (a branch, a
    gate, a level); its lines are added to the message. Returns the error.
    """
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        hints = diagnose(got, expected) if diagnose else []
        raise GradingFailure(
            f"{what}: shape {got.shape}, expected {expected.shape}" + "".join(f"\n- {h}" for h in hints)
        )
    if not np.all(np.isfinite(got)):
        raise GradingFailure(f"{what}: the output contains NaN or infinity")
    error = relative_error(got, expected)
    if error > tolerance:
        hints = diagnose(got, expected) if diagnose else []
        raise GradingFailure(
            f"{what} differs from the reference (relative error {error:.2g}, tolerance {tolerance:g})"
            + "".join(f"\n- {h}" for h in hints)
        )
    return error
