"""`course check` gates catch what they promise to catch."""

from __future__ import annotations

import pytest
from nbfactory import cell, make_course, notebook

from dlcourse.authoring.check import autograde_gates, release_gate
from dlcourse.authoring.release import release

GOOD = notebook([
    cell("code", "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", "f", solution=True),
    cell("code", "assert f() == 1", "test_f", grade=True, locked=True, points=2),
])
# A test that cannot fail: the untouched release would score, which gate 2 must flag.
VACUOUS = notebook([
    cell("code", "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", "f", solution=True),
    cell("code", "assert True", "test_f", grade=True, locked=True, points=2),
])
# The solution itself fails its own test: gate 1 must flag it.
WRONG = notebook([
    cell("code", "def f():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION", "f", solution=True),
    cell("code", "assert f() == 1", "test_f", grade=True, locked=True, points=2),
])


@pytest.mark.slow
@pytest.mark.parametrize("source, expected", [
    (GOOD, [True, True]), (VACUOUS, [True, False]), (WRONG, [False, True]),
])
def test_autograde_gates(tmp_path, source, expected):
    course = make_course(tmp_path / "c", {"a": source})
    release(course)
    gates = autograde_gates(course, "a", timeout=120)
    assert [g.ok for g in gates] == expected, [g.detail for g in gates]


def test_release_gate_flags_a_stale_release(tmp_path):
    course = make_course(tmp_path / "c", {"a": GOOD})
    (course.root / "examples" / "a").mkdir(parents=True)
    release(course)
    from dlcourse.authoring.examples import sync_examples

    sync_examples(course, "a")
    assert all(g.ok for g in release_gate(course))
    (course.assignments / "a" / "a.ipynb").write_text("{}")
    failed = [g for g in release_gate(course) if not g.ok]
    assert [g.name for g in failed] == ["a: release is current", "a: example submissions are current"]
