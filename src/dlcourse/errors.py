"""The one exception type the CLI turns into a one-line message."""


class CourseError(Exception):
    """A problem the user can fix (bad argument, missing file, broken notebook)."""
