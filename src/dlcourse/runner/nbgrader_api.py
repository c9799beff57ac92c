"""A thin layer over nbgrader's Python API that raises instead of returning dicts."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from dlcourse.errors import CourseError
from dlcourse.runner.course import CONFIG_NAME, Course
from dlcourse.runner.nbgrader_plugins import environment_bin_on_path


def load_config(course: Course, **overrides: dict[str, Any]) -> Config:
    """The course's nbgrader_config.py, with per-call overrides by class name."""
    config = PyFileConfigLoader(CONFIG_NAME, path=str(course.root)).load_config()
    for section, values in overrides.items():
        for key, value in values.items():
            config[section][key] = value
    return config


def api(course: Course, **overrides: dict[str, Any]):
    """An ``NbGraderAPI`` for the course; nbgrader's own logging kept quiet."""
    from nbgrader.apps import NbGraderAPI

    environment_bin_on_path()
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    return NbGraderAPI(config=load_config(course, **overrides))


def checked(result: dict[str, Any], what: str) -> dict[str, Any]:
    """Raise a CourseError with nbgrader's last error line when a call failed."""
    if result.get("success"):
        return result
    raise CourseError(f"{what} failed: {failure_reason(result)}")


_EXCEPTION_LINE = re.compile(r"^\s*([A-Za-z_.]*(Error|Exception)): (.+)$")


def failure_reason(result: dict[str, Any]) -> str:
    """The most specific line of nbgrader's log: the root exception if there is one."""
    text = (result.get("log") or "") + "\n" + (result.get("error") or "")
    causes = [
        f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(3)}"
        for line in text.splitlines()
        if (m := _EXCEPTION_LINE.match(line)) and "NbGraderException" not in m.group(1)
    ]
    if causes:
        return causes[0]
    errors = [ln.split("]", 1)[-1].strip() for ln in text.splitlines() if "[ERROR]" in ln]
    return errors[0] if errors else "unknown error (see nbgrader's log)"


def generate_assignment(course: Course, assignment: str, release_dir: Path, db_url: str) -> None:
    """Run nbgrader generate_assignment into ``release_dir`` with the given gradebook."""
    nb_api = api(
        course,
        CourseDirectory={"release_directory": str(release_dir), "db_url": db_url},
    )
    checked(nb_api.generate_assignment(assignment, force=True, create=True),
            f"nbgrader generate_assignment {assignment}")
