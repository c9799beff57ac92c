"""Red team, plain nbgrader: `nbgrader autograde <a>` for the whole class, and formgrader's Autograde.

The same hostile submissions as ``tests/test_redteam_course_grade.py`` (see its docstring for what
each attack does and what "blocked" means), graded without the `course` command:

- ``nbgrader``: from the course folder, ``nbgrader generate_assignment lstm``, then ``nbgrader
  autograde lstm --create`` for the whole class (students in sorted order, classmates last), then
  ``nbgrader generate_feedback lstm``, each a subprocess;
- ``formgrader``: what formgrader's Autograde button runs, ``NbGraderAPI(config of the course's
  nbgrader_config.py).autograde(lstm, student)`` per student in sorted order, from a Python
  subprocess. Its last student aims at the gradebook itself; the scores are read from a copy
  taken before that student, and the gradebook must still hold them afterwards.

Both as the invoking user (root in CI) and as uid 4242 (``setpriv``; skipped only when not root).
Only the kernel runs student code on these paths (there is no repeat outside the notebook), so
the attacks here are the kernel-side ones:

==  ===============================  ===========  ===============================================
 #  attack                           runs          note
==  ===============================  ===========  ===============================================
 1  reference lookup                 Nr Fr Fu      hidden tests must not pass without work
 2  reference code                   Nr            LSTM cells must stay 0
 4  forged replies from the kernel   Fr            classmates unaffected
 5  symlinks out                     Nr Nu Fr      generate_feedback copies what the kernel leaves
 6  symlink overwrite                Nr Nu Fr Fu   a classmate's submission; on formgrader the
                                                   gradebook itself (graded last)
 7  state for the next student       Nr Nu Fr Fu   the next kernel finds nothing
 9  script in output + deep literal  Nr Nu         feedback HTML (generate_feedback) and outputs inert
10  snooping                         Nu
11  exception swallowing             Nr Nu         test_sequence_models included
12  grade_id / metadata spoofing     Nr Nu
13  files named like the grader's    Nr Nu         forged hidden_* files must not be the references
==  ===============================  ===========  ===============================================

(N = nbgrader whole class, F = formgrader; r = root, u = ordinary user.) The resource attack (8)
runs on the `course grade` paths only: a plain nbgrader kernel's memory limit is the course
configuration's default (4 GB), which the 3 GB the attack writes to tmpfs does not exceed.
"""

from __future__ import annotations

import pytest
from redteam import harness, verdicts

pytestmark = pytest.mark.slow

BATCHES = {
    ("nbgrader", "root"): ["lookup", "refcode", "links", "overwrite", "state", "script", "swallow", "spoof",
                           "forged"],
    ("nbgrader", "user"): ["links", "overwrite", "state", "script", "snoop", "swallow", "spoof", "forged"],
    ("formgrader", "root"): ["lookup", "forge", "links", "state", "overwrite_db"],
    ("formgrader", "user"): ["lookup", "state", "overwrite_db"],
}


@pytest.fixture(scope="module")
def shared_base(tmp_path_factory):
    return tmp_path_factory.getbasetemp().parent


def _grade(path: str, user: str, shared_base, subtests) -> None:
    reason = harness.skip_reason(user)
    if reason:
        pytest.skip(reason)
    batch = harness.run_batch(f"{path}-{user}", path, user, BATCHES[path, user], shared_base)
    clean = harness.clean_batch(shared_base)  # after the batch: whichever worker is first grades it
    assert not verdicts.clean_problem(clean), verdicts.clean_problem(clean)
    for name, ok, message in verdicts.all_checks(batch, clean):
        with subtests.test(msg=name):
            assert ok, message


@pytest.mark.parametrize("user", ["root", "user"])
def test_nbgrader_autograde_whole_class(user, shared_base, subtests):
    _grade("nbgrader", user, shared_base, subtests)


@pytest.mark.parametrize("user", ["root", "user"])
def test_formgrader_autograde(user, shared_base, subtests):
    _grade("formgrader", user, shared_base, subtests)
