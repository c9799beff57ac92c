"""Exceptions raised by the data loaders.

A wrong array that loads silently is worse than a crash, so every integrity or
availability problem becomes one of these, naming the file involved.
"""

from __future__ import annotations

from dlcourse.errors import CourseError


class DataError(CourseError):
    """A data file is corrupt, truncated, tampered with or has the wrong content."""


class MissingDataError(DataError, FileNotFoundError):
    """An expected data file or folder does not exist (nothing is ever downloaded)."""
