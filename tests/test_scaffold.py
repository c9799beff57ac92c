"""`course new ID`: a practical that releases, grades, passes its gates and publishes at once,
created in a copy of the course without editing any file the course already has."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlcourse.authoring.scaffold import new_practical
from dlcourse.errors import CourseError
from dlcourse.runner.course import Course

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
NEW = "attention"
#: Where a new practical's files may go; anything else new must be a TA working folder.
PRACTICAL_PLACES = (f"solutions/{NEW}/", f"src/dlcourse/grading/{NEW}.py", f"assignments/{NEW}/",
                    f"examples/submissions/{NEW}/", f"examples/{NEW}/")
WORKING_FOLDERS = ("submitted/", "autograded/", "feedback/", "grades/", "gradebook.db")

GATES = f"""
import json, sys
from dlcourse.authoring import check
from dlcourse.authoring.examples import submissions_dir, sync_examples
from dlcourse.authoring.release import release
from dlcourse.runner import sandbox
from dlcourse.runner.course import Course
from dlcourse.runner.grade import grade

course = Course.find()
unconfined = sandbox.detect().kind != "bubblewrap"
result = grade(course, "{NEW}", submissions_dir(course, "{NEW}"), timeout=600, unconfined=unconfined)
rows = {{r.student: [r.score, r.max_score, r.status] for r in result.rows}}
gates = [*check.practical_gate(course, "{NEW}"), *check.reference_gate(course, "{NEW}"),
         *check.autograde_gates(course, "{NEW}", timeout=600), *check.mutant_gate(course, "{NEW}")]
stale = release(course, ["{NEW}"], check=True)["{NEW}"] + sync_examples(course, "{NEW}", check=True)
print(json.dumps({{"rows": rows, "gates": [[g.name, g.ok, g.detail] for g in gates], "stale": stale}}))
"""


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _copy_course(dest: Path) -> None:
    """The committed course (what a clone holds), in ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        source = REPO / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)


def _run(copy: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Python in the copy, with the copy's own package (not the one this test imports)."""
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "DLCOURSE_ROOT": str(copy)}
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _course(copy: Path, *args: str) -> subprocess.CompletedProcess:
    return _run(copy, "-c", "import sys; from dlcourse.cli import main; sys.exit(main(sys.argv[1:]))", *args)


def test_a_new_practical_works_at_once_and_edits_nothing_else(tmp_path):
    copy = tmp_path / "course"
    _copy_course(copy)
    before = _files(copy)

    made = _course(copy, "new", NEW)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert "no hand-in yet" in made.stdout
    after = _files(copy)
    assert {p for p in before if after.get(p) != before[p]} == set(), "course new edited a file"
    added = sorted(set(after) - set(before))
    assert all(p.startswith(PRACTICAL_PLACES) for p in added), added
    for expected in (f"solutions/{NEW}/{NEW}.ipynb", f"solutions/{NEW}/hidden_{NEW}_refs.npz",
                     f"solutions/{NEW}/mutants.py", f"src/dlcourse/grading/{NEW}.py",
                     f"assignments/{NEW}/{NEW}.ipynb", f"examples/submissions/{NEW}/perfect/{NEW}.ipynb",
                     f"examples/submissions/{NEW}/untouched/{NEW}.ipynb"):
        assert expected in added, expected

    checked = _run(copy, "-c", GATES)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-5000:]
    report = json.loads(checked.stdout.strip().splitlines()[-1])
    rows = report["rows"]
    assert rows["perfect"][0] == 3 and rows["perfect"][2] == "graded, manual pending", rows
    assert rows["untouched"][0] == 0 and rows["untouched"][2] == "graded", rows
    assert rows["partly_wrong"][0] == 1, rows  # the overflow costs the hidden test's 2 points
    assert rows["broken"][2].startswith("not graded"), rows
    failed = [g for g in report["gates"] if not g[1]]
    assert not failed and len(report["gates"]) >= 5, report["gates"]
    assert report["stale"] == []

    edition = tmp_path / "edition"
    published = _course(copy, "publish", str(edition))
    assert published.returncode == 0, published.stdout[-3000:] + published.stderr[-3000:]
    assert (edition / "assignments" / NEW / f"{NEW}.ipynb").is_file()
    # its visible test calls no check of the spec module, so the spec module does not ship
    assert not (edition / "src" / "dlcourse" / "grading" / f"{NEW}.py").exists()
    assert not (edition / "solutions").exists()

    final = _files(copy)
    assert {p for p in before if final.get(p) != before[p]} == set(), "grading or publishing edited a file"
    extra = [p for p in set(final) - set(before) if not p.startswith((*PRACTICAL_PLACES, *WORKING_FOLDERS))]
    assert not extra, extra


def test_new_refuses_a_taken_or_malformed_id(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("")
    course = Course(tmp_path)
    for bad in ("Attention", "2d", "class", "a-b"):
        with pytest.raises(CourseError, match="not a practical id"):
            new_practical(course, bad)
    with pytest.raises(CourseError, match="not this course's"):
        new_practical(course, NEW)  # the package in use is the repository's, not tmp_path's


def test_new_refuses_an_existing_practical(repo_course):
    with pytest.raises(CourseError, match="exists"):
        new_practical(repo_course, "lstm")
