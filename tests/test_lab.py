"""`make lab`: JupyterLab serves nbgrader's formgrader on this course."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dlcourse.runner.course import scratch_course

JUPYTER = Path(sys.executable).parent / "jupyter"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_formgrader_lists_the_course_assignments(repo_course, tmp_path):
    course = scratch_course(repo_course, tmp_path / "course")
    port = _free_port()
    server = subprocess.Popen(
        [str(JUPYTER), "lab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=t",
         f"--ServerApp.root_dir={course.root}"],
        cwd=course.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}/formgrader/api/assignments?token=t"
    try:
        deadline, answer = time.monotonic() + 90, None
        while time.monotonic() < deadline and answer is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    answer = json.loads(response.read())
            except OSError:
                time.sleep(1)
        assert answer is not None, "formgrader did not answer"
        names = {entry["name"] for entry in answer}
        assert set(repo_course.assignment_ids()) <= names
        assert all(entry["source_path"].startswith("solutions/") for entry in answer)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "No such file or directory: 'alembic'" not in err
