"""The `course` command (TA side)."""

from dlcourse.cli.main import main

__all__ = ["main"]
