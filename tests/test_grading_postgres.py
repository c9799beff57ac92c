"""`course grade --db postgresql://...` against a real PostgreSQL server started for the test.

The server runs as an unprivileged user (``initdb`` refuses root) on a Unix
socket in a private folder; the test is skipped, with the reason, where no
server can be started.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from nbfactory import tiny_course, tiny_submission
from nbformat import write

from dlcourse.errors import CourseError
from dlcourse.runner.grade import grade

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(user: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's 'postgresql'")
    user = None
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("running as root without 'runuser': cannot start PostgreSQL as an unprivileged user")
        user = "nobody"
    folder = Path(tempfile.mkdtemp(prefix="dlcourse-pg-"))
    folder.chmod(0o755)
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        os.chown(sock, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    init = subprocess.run(_as_user(user, [initdb, "-D", str(data), "-U", "grader", "--auth=trust"]),
                          capture_output=True, text=True)
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed: {(init.stderr.strip().splitlines() or ['?'])[-1]}")
    start = subprocess.run(_as_user(user, [pg_ctl, "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                                           f"-k {sock} -p {port} -c listen_addresses=''", "start"]),
                           capture_output=True, text=True)
    if start.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {(start.stderr.strip().splitlines() or ['?'])[-1]}")
    try:
        yield f"postgresql://grader@/postgres?host={sock}&port={port}"
    finally:
        subprocess.run(_as_user(user, [pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_parallel_grading_into_postgresql(postgres_url, tmp_path):
    from nbgrader.api import Gradebook

    course = tiny_course(tmp_path / "course")
    incoming = tmp_path / "incoming"
    bodies = {f"s{i}": (None if i % 2 else "def double(x):\n    return x + 1") for i in range(4)}
    for student, body in bodies.items():
        (incoming / student).mkdir(parents=True)
        write(tiny_submission(course, body), incoming / student / "tiny.ipynb")
    result = grade(course, "tiny", incoming, workers=2, db=postgres_url, timeout=120)
    assert {r.student: r.score for r in result.rows} == {"s0": 0, "s1": 2, "s2": 0, "s3": 2}
    with Gradebook(postgres_url) as gb:
        scores = {s.student.id: s.score for s in gb.find_assignment("tiny").submissions}
    assert scores == {"s0": 0, "s1": 2, "s2": 0, "s3": 2}
    assert not (course.root / "gradebook.db").exists() or not _has_submissions(course.root / "gradebook.db")
    again = grade(course, "tiny", db=postgres_url, timeout=120)
    assert sorted(again.skipped) == ["s0", "s1", "s2", "s3"], "graded and unchanged: skipped"
    # A gradebook that lacks them (here nbgrader's SQLite file) gets them graded, not skipped.
    local = grade(course, "tiny", workers=2, timeout=120)
    assert local.skipped == [] and {r.student: r.score for r in local.rows} == {"s0": 0, "s1": 2, "s2": 0, "s3": 2}


def _has_submissions(path: Path) -> bool:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{path}") as gb:
        return any(a.submissions for a in gb.assignments)


def test_an_unreachable_database_is_one_clear_error(tmp_path):
    course = tiny_course(tmp_path / "course")
    (course.submitted / "s0" / "tiny").mkdir(parents=True)
    with pytest.raises(CourseError, match="--db: cannot connect to"):
        grade(course, "tiny", db="postgresql://nobody@/none?host=/nonexistent&port=1")
    with pytest.raises(CourseError, match=r"--db: .* is not a usable database URL"):
        grade(course, "tiny", db="nosuchdialect://x")
