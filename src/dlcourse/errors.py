"""The one exception type the CLI turns into a one-line message."""

from __future__ import annotations

import sys
from collections.abc import Callable


class CourseError(Exception):
    """A problem the user can fix (bad argument, missing file, broken notebook)."""


def run_command(command: Callable[[], int]) -> int:
    """Run a `course` command: a problem the user can fix is one line on stderr (exit 1), Ctrl-C
    a short note (exit 130); the TA's command and the student edition's share this."""
    try:
        return command()
    except CourseError as exc:
        print(f"course: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("course: interrupted", file=sys.stderr)
        return 130
