"""`course new ID`: a practical that works at once, in the places where the course finds it.

It writes the source notebook (the Colab setup cell, a setup cell, one graded function with
its visible and hidden tests, a written question with its answer key and rubric), the spec
module ``dlcourse/grading/<id>.py``, the mutant catalogue and a deliberate mistake for the
example submissions; then it makes the references from the solution, writes the hidden block
from the spec, releases the practical and writes its example submissions. No other file of
the course is edited: nothing lists practicals (:mod:`dlcourse.authoring.practical`).

There is no hand-in: a hand-in needs a trained reference model and a reserved test split
that only the instructor can make for the practical's task. :data:`HANDIN_STEPS` says how
to add one.
"""

from __future__ import annotations

import importlib
import keyword
import re
from pathlib import Path

import nbformat

import dlcourse.grading
from dlcourse.authoring.examples import examples_dir, sync_examples
from dlcourse.authoring.practical import CATALOGUE_FILE, practical, practical_problems
from dlcourse.authoring.references import write_hidden_blocks, write_references
from dlcourse.authoring.release import release
from dlcourse.colab import SETUP_CELL
from dlcourse.errors import CourseError
from dlcourse.runner.course import Course

#: What adding a hand-in takes (printed by `course new`, stated in the notebook's source).
HANDIN_STEPS = (
    "This practical has no hand-in yet: a handed-in model needs a trained reference model and a "
    "reserved test split, which only you can make for its task. To add one: declare a "
    "HandinContract in the spec module and pass it as AssignmentSpec(handin=...); put the reserved "
    "split (a hidden_*.npz file) and the solution's trained <id>_model.keras beside the source "
    "notebook; add the training cell, a markdown cell stating the target and a test cell with the "
    "contract's grade_id; list the model under the notebook metadata's dlcourse.handin; then run "
    "`course release`, which writes the hidden cell from the contract."
)


def _meta(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = True,
          points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _code(grade_id: str, source: str, **meta) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata=_meta(grade_id, **meta))
    cell.id = grade_id
    return cell


def _markdown(grade_id: str, source: str, **meta) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source, metadata=_meta(grade_id, **meta))
    cell.id = grade_id
    return cell


def notebook(assignment: str) -> nbformat.NotebookNode:
    """The source notebook: one graded NumPy function, its tests, a written question."""
    setup = nbformat.v4.new_code_cell(SETUP_CELL.format(location=""))
    setup.id = "colab-setup"
    cells = [
        setup,
        _markdown("intro", f"# Practical: {assignment}\n\n"
                  "*8DM50 Deep Learning II: Advanced Neural Network Architectures.*\n\n"
                  "Replace this introduction: what students build, and the points table.\n\n"
                  "| part | points |\n|---|---|\n| 1. `softmax` | 3 |\n| 2. written question | 1 |\n"),
        _code("setup", "import dlcourse.runtime\n\n"
              "dlcourse.runtime.setup()  # quiet logs, fixed seeds, deterministic ops\n\n"
              "import numpy as np"),
        _markdown("md-softmax", "## 1. A softmax that never overflows\n\n"
                  "Write `softmax(z)`: the softmax over the last axis of the NumPy array `z`, "
                  "exp(z) / sum(exp(z)), for any finite `z` (also z = 1000) and any number of "
                  "leading axes. The output has the input's shape."),
        _code("softmax", 'def softmax(z):\n    """Softmax over the last axis, without overflow."""\n'
              "    ### BEGIN SOLUTION\n    z = np.asarray(z, dtype=float)\n"
              "    shifted = np.exp(z - z.max(axis=-1, keepdims=True))\n"
              "    return shifted / shifted.sum(axis=-1, keepdims=True)\n    ### END SOLUTION",
              solution=True, locked=False),
        _code("test_softmax", "p = softmax(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))\n"
              "assert p.shape == (2, 3), \"the output has the input's shape\"\n"
              'assert np.allclose(p.sum(axis=-1), 1), "each row sums to 1"\n'
              'assert np.allclose(p[1], 1 / 3), "equal inputs, equal probabilities"\n'
              'assert np.all(np.diff(p[0]) > 0), "a larger input, a larger probability"',
              grade=True, points=1),
        _code("test_softmax_reference", "# Hidden tests: inputs of several shapes and scales (up to 1000), "
              "against the solution's outputs.", grade=True, points=2),
        _markdown("md-question", "## 2. Written question\n\n"
                  "Why does subtracting the maximum before the exponential not change the softmax?"),
        _markdown("question_shift", "*Answer key.* The softmax of z and of z − c are equal for any "
                  "constant c: exp(z − c) = exp(z)·exp(−c), and the common factor exp(−c) cancels "
                  "between numerator and denominator. With c = max(z) every exponent is ≤ 0, so "
                  "nothing overflows. *Rubric:* 1 point for the cancelling factor.",
                  grade=True, solution=True, locked=False, points=1),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


SPEC_MODULE = '''"""Checks for the `{id}` practical: ``softmax`` against the solution's outputs.

Written by `course new`; edit freely. The reference cases' expected outputs come from the
solution (`course references {id}`); this module ships to students and holds no answer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dlcourse.grading.compare import GradingFailure
from dlcourse.grading.references import Case
from dlcourse.grading.spec import AssignmentSpec, FunctionSpec, Produced

REFERENCE_FILE = "hidden_{id}_refs.npz"
#: (case, shape, scale of the inputs, seed)
SOFTMAX_CASES = (
    ("softmax_row", (5,), 1.0, 0),
    ("softmax_batch", (3, 7), 3.0, 1),
    ("softmax_large", (2, 4, 6), 1000.0, 2),
)


def _softmax_what(case: Case) -> str:
    return f"softmax(an array of shape {{case.inputs.shape}}, values up to {{np.abs(case.inputs).max():.0f}})"


def produce_softmax(softmax: Callable, case: Case) -> Produced:
    """The student's softmax of a copy of the case's inputs; an overflow is a failure."""
    what = _softmax_what(case)
    with np.errstate(over="raise", invalid="raise"):
        try:
            result = softmax(case.inputs.copy())
        except FloatingPointError as exc:
            raise GradingFailure(f"{{what}} overflowed ({{exc}}): subtract the maximum first") from None
        except Exception as exc:
            raise GradingFailure(f"{{what}} raised {{type(exc).__name__}}: {{exc}}") from exc
    try:
        return Produced(np.asarray(result, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise GradingFailure(f"{{what}} did not return a numeric array ({{exc}})") from None


def _diagnose_softmax(case: Case) -> Callable[[np.ndarray, np.ndarray], list[str]]:
    def diagnose(got: np.ndarray, expected: np.ndarray) -> list[str]:
        if got.shape != expected.shape:
            return ["the output has the input's shape"]
        if not np.all(np.isfinite(got)):
            return ["the output has NaN or infinity: subtract the maximum along the last axis first"]
        if not np.allclose(got.sum(axis=-1), 1.0, atol=1e-6):
            return ["the probabilities along the last axis do not sum to 1: normalise over axis=-1"]
        return []
    return diagnose


SOFTMAX = FunctionSpec(
    function="softmax", select="softmax", produce=produce_softmax, describe=_softmax_what,
    diagnose=_diagnose_softmax)


def make_cases(softmax: Callable) -> list[Case]:
    """Reference cases: seeded inputs, expected outputs from the solution's ``softmax``."""
    cases = []
    for name, shape, scale, seed in SOFTMAX_CASES:
        z = np.random.default_rng(seed).uniform(-scale, scale, shape)
        cases.append(Case(name, {{"scale": scale}}, z, np.asarray(softmax(z), dtype=np.float64)))
    return cases


ASSIGNMENT = AssignmentSpec(
    assignment="{id}", module=__name__, reference_file=REFERENCE_FILE, functions=(SOFTMAX,),
    make_cases=make_cases)
'''

CATALOGUE = '''"""Typical mistakes (mutants) and alternative correct solutions for `{id}`."""

from dlcourse.authoring.mutants import alternative as _correct
from dlcourse.authoring.mutants import mutant as _mutant

IMPLEMENTATIONS = [
    _mutant("no shift (overflows)", "softmax", \'\'\'
def softmax(z):
    e = np.exp(np.asarray(z, dtype=float))
    return e / e.sum(axis=-1, keepdims=True)
\'\'\'),
    _mutant("normalised over the first axis", "softmax", \'\'\'
def softmax(z):
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)
\'\'\'),
    _mutant("not normalised", "softmax", \'\'\'
def softmax(z):
    z = np.asarray(z, dtype=float)
    return np.exp(z - z.max(axis=-1, keepdims=True))
\'\'\'),
    _correct("log-sum-exp", "softmax", \'\'\'
def softmax(z):
    z = np.asarray(z, dtype=float)
    top = z.max(axis=-1, keepdims=True)
    return np.exp(z - top - np.log(np.exp(z - top).sum(axis=-1, keepdims=True)))
\'\'\'),
    _correct("loop over rows", "softmax", \'\'\'
def softmax(z):
    z = np.asarray(z, dtype=float)
    flat = z.reshape(-1, z.shape[-1])
    out = np.empty_like(flat)
    for i, row in enumerate(flat):
        e = np.exp(row - row.max())
        out[i] = e / e.sum()
    return out.reshape(z.shape)
\'\'\'),
]
#: grade_id -> the graded functions it builds on (a mistake there may cost marks here too)
DEPENDS_ON: dict[str, set[str]] = {{}}
#: cells the one-kernel check leaves out (slow training, downloads)
SKIP: tuple[str, ...] = ()
'''

#: The deliberate mistake of the partly_wrong example submission: passes the visible test,
#: fails the hidden one.
MISTAKE = '''def softmax(z):
    e = np.exp(np.asarray(z, dtype=float))  # overflows for large z: the visible test cannot see it
    return e / e.sum(axis=-1, keepdims=True)
'''

_ID = re.compile(r"[a-z][a-z0-9_]*")


def spec_module_path(course: Course, assignment: str) -> Path:
    """Where the practical's spec module goes: the grading package the course imports, which
    must be the course's own (else the new practical would be found nowhere)."""
    package = Path(next(iter(dlcourse.grading.__path__))).resolve()
    if course.root.resolve() not in package.parents:
        raise CourseError(f"the dlcourse package in use ({package}) is not this course's "
                          f"({course.root / 'src'}): install the course's package, or set PYTHONPATH to "
                          f"{course.root / 'src'}")
    return package / f"{assignment}.py"


def new_practical(course: Course, assignment: str) -> list[str]:
    """Scaffold practical ``assignment``; returns the paths written (relative to the course)."""
    if not _ID.fullmatch(assignment) or keyword.iskeyword(assignment):
        raise CourseError(f"{assignment!r} is not a practical id: lower-case letters, digits and _, "
                          "starting with a letter")
    folder = course.solutions / assignment
    module = spec_module_path(course, assignment)
    for taken in (folder, module, course.assignments / assignment, examples_dir(course) / assignment):
        if taken.exists():
            raise CourseError(f"{taken} exists: choose another id for the new practical")
    folder.mkdir(parents=True)
    nbformat.write(notebook(assignment), course.source_notebook(assignment))
    (folder / CATALOGUE_FILE).write_text(CATALOGUE.format(id=assignment))
    module.write_text(SPEC_MODULE.format(id=assignment))
    mistake = examples_dir(course) / assignment / "partly_wrong" / "softmax.py"
    mistake.parent.mkdir(parents=True)
    mistake.write_text(MISTAKE)
    importlib.invalidate_caches()  # the spec module is found by listing the package
    written = write_references(course, assignment)
    write_hidden_blocks(course, assignment)
    release(course, [assignment])
    sync_examples(course, assignment)
    problems = practical_problems(practical(course, assignment))
    if problems:
        raise CourseError("the new practical is incomplete: " + "; ".join(problems))
    paths = [folder / f"{assignment}.ipynb", folder / CATALOGUE_FILE, *(course.root / w for w in written),
             module, mistake, course.assignments / assignment, examples_dir(course) / "submissions" / assignment]
    return [str(p.relative_to(course.root)) if course.root in p.parents else str(p) for p in paths]
