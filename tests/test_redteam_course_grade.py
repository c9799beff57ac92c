"""Red team, `course grade`: hostile submissions graded with honest classmates, locally and on Dask.

Each test grades one batch of the ``lstm`` assignment (real specs, references and hand-in) through
the ``course`` CLI as a subprocess, ``--workers 1`` (or a real Dask scheduler and one
single-threaded worker on loopback for ``--cluster``), ``--device cpu --memory 2``, as the
invoking user (``root``: root in CI) and as an ordinary user (``user``: uid 4242 through
``setpriv``, the batch folder chowned to it; skipped only when the suite does not run as root).
Where uid 4242 cannot execute the environment's interpreter (a pyenv Python below /root, as on
the CI image), it runs the system's Python of the same minor version over the environment's
site-packages (:func:`redteam.harness.user_python`): the same packages and code.
Attackers' ids sort first and the honest classmates (``zz_partly``, ``zz_perfect``: the examples
with a mark in their code) last, so every attack runs before them on the same warm processes;
each check is a subtest. The scores a clean batch gives come from plain ``nbgrader autograde`` of
the examples, graded once per run (:func:`redteam.harness.clean_batch`).

Attacks (builders in :mod:`redteam.attacks`, payloads in :mod:`redteam.implant`; ids ``a*`` are
graded first, the ones that sabotage the grader itself, ``s*``, after them), and where they run
(L = local, D = Dask; r = root, u = ordinary user; N, F: see ``tests/test_redteam_nbgrader.py``):

==  ===============================  =========  =============================================================
 #  attack                           runs       blocked means
==  ===============================  =========  =============================================================
 1  reference lookup: hidden_* read  Lr Dr      0 on every hidden test cell and a total <= the untouched
    in the kernel, passed on through  (Nr Fr    release's (the same for 2-4, 7a, 8, 10-15)
    keyrings, /dev/shm, /tmp, $HOME,   Fu)
    writable folders, abstract
    sockets, SysV shm; every graded
    function answers by looking up
 2  reference code: the package's    Lr Lu      0 on every LSTM cell
    reference LSTM step and layer     (Nr)
    called after undoing guards
 3  channel hijack from the repeat:  Lr Lu Dr   the classmates score as in a clean batch and their files are
    /proc/*/fd pipes and sockets               untouched; no classmate's code anywhere else
    read and answered with forged
    lines, sibling job folders
 4  forged replies from the kernel   Lr Lu      as 3
    on every inherited descriptor     (Fr)
 5  symlinks out (kernel's folder,   Lr (Nr Nu  no TA secret, solution, gradebook or classmate bytes and no link
    every writable folder, the         Fr)      in any graded or feedback file; nothing outside the grading
    repeat's folder)                           folders changes (the targets' permissions included)
 6  symlink overwrite of the         Lr (Nr Nu  the classmate's submission and the TA's secret file unchanged
    notebook before it is written      Fu Fr)   (on formgrader: the gradebook survives)
 7  state for the next student       Lr Dr      the next student (a correct notebook that raises if it finds
    (0555 folders, POSIX mq, keys,    (Nr Nu    any of it, in the kernel and outside) scores as the clean
    SysV, a process, IPython startup,  Fr Fu)   perfect one; no process, key or SysV object outlives the batch
    usercustomize, keras.json)
 8  resources: 1.5 GB into /tmp and  Lr Lu Dr   tmpfs writes capped or stopped for memory (--memory 2); no
    /dev/shm, 1 GiB sparse files in            file >= 100 MB in the course; no trusted process > 1.5 GiB;
    the kernel's and repeat's folders          the TA's TMPDIR never > 512 MiB
 9  script in output (+ 5,000-deep   Lr (Nr Nu) no live script in feedback HTML or autograded outputs; the
    literals in a correct notebook)             correct notebook keeps every cell's score
10  snooping: /etc/shadow, TA home,  Lr (Nu)    no TA secret, TA environment token or shadow line in any graded
    /proc/*/environ; CSV formulas              or feedback file or CSV; no formula or control character in
    and terminal controls in errors            the CSVs or on the terminal
11  exception swallowing          Lr (Nr Nu) 0 on test_sequence_models (no hidden part) and every hidden cell
12  grade_id / metadata spoofing     (Nr Nu)    total <= untouched, maximum unchanged, no extra cells
13  files named like the grader's    (Nr Nu)    hidden tests not passed with forged references; no config ran
14  signals: SIGKILL to everything   Lr Lu      the classmates score as in a clean batch
    visible, kill(-1)
15  zip-bomb hand-in (.keras)        Lr         as 1, and no trusted process > 1.5 GiB
==  ===============================  =========  =============================================================

Also on Lr: a second `course grade` without ``--force`` leaves every classmate as a clean batch
grades it (victims of a sabotaged batch are regraded). Every batch checks that it completes, that
no process, key or System V object of student code outlives it, that no file outside the grading
folders (course, instructor's checkout, imported download, TA's secret folder, marker-named files
anywhere) changes or appears, and that no hidden file bytes, hidden test source (feedback),
solution source or TA secret reach any student's graded or feedback files.
"""

from __future__ import annotations

import pytest
from redteam import harness, verdicts

pytestmark = pytest.mark.slow

BATCHES = {
    ("local", "root"): ["lookup", "refcode", "hijack", "forge", "links", "overwrite", "state", "hog", "script",
                        "snoop", "swallow", "signals", "bomb"],
    ("local", "user"): ["refcode", "hijack", "forge", "hog", "signals"],
    ("dask", "root"): ["lookup", "hijack", "state", "hog"],
}


@pytest.fixture(scope="module")
def shared_base(tmp_path_factory):
    return tmp_path_factory.getbasetemp().parent


def _grade(path: str, user: str, shared_base, subtests) -> None:
    reason = harness.skip_reason(user)
    if reason:
        pytest.skip(reason)
    batch = harness.run_batch(f"{path}-{user}", path, user, BATCHES[path, user], shared_base,
                              rerun=(path, user) == ("local", "root"))
    clean = harness.clean_batch(shared_base)  # after the batch: whichever worker is first grades it
    assert not verdicts.clean_problem(clean), verdicts.clean_problem(clean)
    for name, ok, message in verdicts.all_checks(batch, clean):
        with subtests.test(msg=name):
            assert ok, message


@pytest.mark.parametrize("user", ["root", "user"])
def test_course_grade_locally(user, shared_base, subtests):
    _grade("local", user, shared_base, subtests)


def test_course_grade_on_dask(shared_base, subtests):
    _grade("dask", "root", shared_base, subtests)
