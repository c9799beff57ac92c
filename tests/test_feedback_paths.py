"""No folder of the grading machine in what students get back.

What a graded notebook prints can name the machine that graded it: the Colab setup
cell returned the data folder (``PosixPath('/.../data')``), a traceback runs through
the installed packages, a cell prints its working folder. Autograded notebooks and
feedback pages pass through ``HideMachinePaths``; the setup cell returns nothing; a
hand-in that could not be graded gets a page of its own, without paths either. The
stored outputs of what the course publishes are checked in ``test_stored_paths.py``;
here, the feedback files of a real grading run.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbfactory import tiny_course, tiny_submission
from nbformat.v4 import new_code_cell, new_notebook, new_output
from test_stored_paths import ABSOLUTE_PATH, leaks, machine_strings

from dlcourse.runner.nbgrader_plugins import HideMachinePaths, hide_machine_paths, machine_paths

REPO = Path(__file__).resolve().parents[1]
SITE = next(p for p in sys.path if p.endswith("site-packages"))


def _noisy_notebook() -> nbformat.NotebookNode:
    """Outputs that name this machine: a returned data folder, a traceback, printed folders."""
    cell = new_code_cell("...")
    cell.outputs = [
        new_output("execute_result", data={"text/plain": f"PosixPath('{REPO / 'data'}')"}, execution_count=1),
        new_output("stream", name="stdout", text=f"saved to {Path('/tmp/tmpab12cd/model.keras')}\n"),
        new_output("stream", name="stderr", text=f"{SITE}/keras/src/x.py:1: UserWarning: noise\n"),
        new_output("error", ename="FileNotFoundError", evalue=f"No such file: '{REPO}/submitted/x.npy'",
                   traceback=[f"\x1b[0;32mFile \x1b[0;32m{SITE}/numpy/lib/_npyio_impl.py:455\x1b[0m, in load(file)",
                              f"File {sys.base_prefix}/lib/python3.11/json/decoder.py:1"]),
    ]
    return new_notebook(cells=[cell])


def test_graded_outputs_lose_every_machine_folder():
    notebook = _noisy_notebook()
    assert leaks(notebook, machine_strings()), "control: the planted paths are found"
    step = HideMachinePaths()
    step.config.CourseDirectory.root = str(REPO)
    cleaned, _ = step.preprocess(notebook, {})
    assert not leaks(cleaned, machine_strings()), leaks(cleaned, machine_strings())
    outputs = cleaned.cells[0].outputs
    assert outputs[0].data["text/plain"] == "PosixPath('<course>/data')"
    assert outputs[2].text.startswith("keras/src/x.py:1: UserWarning")
    assert outputs[3].traceback[0].startswith("\x1b[0;32mFile \x1b[0;32mnumpy/lib/_npyio_impl.py:455")
    assert outputs[3].output_type == "error"  # a failure stays a failure


@pytest.mark.parametrize("text", ["see data/README.md", "ratio 3D / 2D", "https://example.org/tmp/x",
                                  "/tmpfile", "relative/tmp/x", "50 beats/min"])
def test_ordinary_text_is_left_alone(text):
    assert hide_machine_paths(text, machine_paths([str(REPO)])) == text


def test_the_setup_cell_shows_no_folder():
    """The Colab setup cell ends with ``dlcourse.colab.setup(...)``: it must return nothing."""
    from dlcourse import colab

    assert colab.SETUP_CELL.rstrip().endswith("dlcourse.colab.setup(COURSE_EDITION)")
    assert colab.setup("") is None  # the course's data is found here: nothing to install


def test_the_page_of_an_ungradable_hand_in_says_what_to_do(tmp_path):
    from dlcourse.runner import ungradable
    from dlcourse.runner.course import Course

    course = Course(tmp_path)
    reason = f"{tmp_path}/submitted/s1/tiny/tiny.ipynb is not a valid notebook (not JSON: <b>cut off</b>)"
    page = ungradable.write(course, "tiny", "s1", reason, 3.0).read_text()
    assert "your hand-in could not be graded" in page and "Score: 0 / 3" in page
    assert "is not a valid notebook" in page and "course validate tiny.ipynb" in page
    assert "<b>cut off</b>" not in page and html.escape("<b>cut off</b>") in page
    assert str(tmp_path) not in page and "<course>/submitted/s1/tiny/tiny.ipynb" in html.unescape(page)
    for why, advice in (("time limit of 1800 s exceeded", "must not train"),
                        ("memory limit of 4 GB exceeded (5.1 GB)", "more memory"),
                        ("grader error: OSError: disk full", "on the grading side")):
        assert advice in ungradable.advice_for(why, "tiny.ipynb"), why


def _text_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        return "\n".join(t for c in nbformat.read(path, as_version=4).cells
                         for o in c.get("outputs", []) for t in _strings(o))
    return html.unescape(re.sub(r"<[^>]+>", " ", path.read_text(errors="replace")))


def _strings(output) -> list[str]:
    found = [output.get("text", ""), output.get("evalue", ""), *output.get("traceback", [])]
    found += [v if isinstance(v, str) else "".join(v) for k, v in output.get("data", {}).items()
              if k.startswith("text/")]
    return [f if isinstance(f, str) else "".join(f) for f in found]


@pytest.mark.slow
def test_feedback_of_a_grading_run_names_no_machine_folder(tmp_path):
    """course grade on submissions whose cells print folders and raise through installed packages."""
    from dlcourse.runner import sandbox
    from dlcourse.runner.grade import grade

    course = tiny_course(tmp_path / "course")
    noisy = tiny_submission(course)
    probe = new_code_cell("import os, pathlib, numpy\nprint(pathlib.Path(numpy.__file__))\n"
                          "print(os.getcwd())\npathlib.Path('data').resolve()")
    raising = new_code_cell("numpy.load('no_such_file.npy')")
    probe.id, raising.id = "probe", "raising"
    noisy.cells[1:1] = [probe, raising]
    incoming = tmp_path / "incoming"
    for student, text in (("s1", nbformat.writes(noisy)), ("s2", '{"cells": [')):
        (incoming / student).mkdir(parents=True)
        (incoming / student / "tiny.ipynb").write_text(text)
    result = grade(course, "tiny", incoming, timeout=120,
                   unconfined=sandbox.detect().kind != "bubblewrap")
    scores = {r.student: r.score for r in result.rows}
    assert scores == {"s1": 2, "s2": 0}, scores

    files = sorted(course.feedback.rglob("*.html")) + sorted(course.autograded.rglob("*.ipynb"))
    assert {p.relative_to(course.root).parts[:2] for p in files} >= {
        ("feedback", "s1"), ("feedback", "s2"), ("autograded", "s1")}
    graded = nbformat.read(course.autograded / "s1" / "tiny" / "tiny.ipynb", as_version=4)
    shown = "\n".join(t for c in graded.cells if c.get("id") == "probe" for o in c.outputs for t in _strings(o))
    assert "numpy/__init__.py" in shown, shown  # the output is there, made relative
    strings = [*machine_strings(), str(course.root)]
    for path in files:
        # what HideMachinePaths wrote (<tmp>/work/data) is symbolic: not a folder of this machine
        text = re.sub(r"<(?:tmp|course|python)>(?:/[^\s'\"<]*)?", "", _text_of(path))
        hits = [m.group(0) for m in ABSOLUTE_PATH.finditer(text)] + [s for s in strings if s in text]
        assert not hits, f"{path.relative_to(course.root)} names the grading machine: {sorted(set(hits))}"
