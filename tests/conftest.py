import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# nbgrader shells out to `alembic`; put this environment's bin/ first.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

from dlcourse.runner.course import Course

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_course() -> Course:
    return Course(REPO)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``practical`` runs once for every practical the course finds in
    solutions/ (no test lists them)."""
    if "practical" in metafunc.fixturenames:
        metafunc.parametrize("practical", Course(REPO).assignment_ids())
