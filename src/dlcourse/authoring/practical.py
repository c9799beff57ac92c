"""What belongs to a practical, and where the course finds it: one convention, defined here.

A practical ``<id>`` is the folder ``solutions/<id>/`` holding its source notebook
``<id>.ipynb``. Everything else is found from there, never registered in a list:

- its spec: the ``ASSIGNMENT`` of the module of :mod:`dlcourse.grading` that declares
  practical ``<id>`` (:mod:`dlcourse.grading.practicals`): its graded functions, their
  reference file and its hand-in contract;
- its references: ``solutions/<id>/<spec.reference_file>``, made by ``course references``;
- its hand-in: the spec's contract, with its reserved split ``solutions/<id>/<data_file>``;
- its mutant catalogue: ``solutions/<id>/mutants.py`` (:data:`CATALOGUE_FILE`), which no
  release, autograde or edition carries;
- its example submissions: ``examples/submissions/<id>/`` and ``examples/<id>/``.

:func:`practical_problems` says, by name, what a practical with graded cells lacks; `course
check` fails on it rather than skipping a gate.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path

from dlcourse.grading.practicals import assignment_specs
from dlcourse.grading.spec import HIDDEN_BEGIN, AssignmentSpec, HandinContract
from dlcourse.runner.course import Course
from dlcourse.runner.nbgrader_plugins import CATALOGUE_FILE
from dlcourse.runner.notebooks import grade_id, nbgrader_meta, read_notebook

__all__ = ["CATALOGUE_FILE", "Practical", "catalogue_path", "load_catalogue_module", "practical",
           "practical_problems", "practicals"]


@dataclass(frozen=True)
class Practical:
    """One practical of a course and the places of what belongs to it."""

    course: Course
    id: str
    spec: AssignmentSpec | None

    @property
    def folder(self) -> Path:
        return self.course.solutions / self.id

    @property
    def notebook(self) -> Path:
        return self.course.source_notebook(self.id)

    @property
    def references(self) -> Path | None:
        """The hidden reference file, where the spec grades functions."""
        if self.spec is None or not self.spec.functions:
            return None
        return self.folder / self.spec.reference_file

    @property
    def handin(self) -> HandinContract | None:
        return self.spec.handin if self.spec else None

    @property
    def catalogue(self) -> Path:
        return self.folder / CATALOGUE_FILE

    @property
    def examples(self) -> Path:
        return self.course.root / "examples" / "submissions" / self.id


def practicals(course: Course) -> list[Practical]:
    """Every practical of ``course``, found from its folders."""
    specs = assignment_specs()
    return [Practical(course, assignment, specs.get(assignment)) for assignment in course.assignment_ids()]


def practical(course: Course, assignment: str) -> Practical:
    """Practical ``assignment`` of ``course`` (an unknown id is an error naming the known ones)."""
    course.require_assignment(assignment)
    return Practical(course, assignment, assignment_specs().get(assignment))


def catalogue_path(course: Course, assignment: str) -> Path:
    """Where practical ``assignment``'s mutant catalogue lives."""
    return Practical(course, assignment, None).catalogue


def load_catalogue_module(path: str | Path) -> types.ModuleType:
    """A catalogue file: ``IMPLEMENTATIONS`` (required), ``DEPENDS_ON`` and ``SKIP``
    (:mod:`dlcourse.authoring.mutants`). Executed from its text, so no compiled copy is left
    beside the source notebook."""
    path = Path(path)
    module = types.ModuleType(f"_mutants_{path.parent.name}", f"mutant catalogue {path}")
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


def practical_problems(found: Practical) -> list[str]:
    """What a practical with graded cells lacks, each naming the missing piece and where it goes.

    A practical whose notebook has autograded test cells needs a spec; a spec that grades
    functions needs its reference file; every graded function needs a test cell holding the
    spec's hidden block, and every hidden block must be a spec's (else the repeat outside the
    notebook would decide it without one); graded functions need a mutant catalogue.
    """
    nb = read_notebook(found.notebook)
    tests = {gid: c for c in nb.cells if (gid := grade_id(c)) and c.cell_type == "code"
             and nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}
    name = found.id
    if not tests:
        return []
    spec = found.spec
    if spec is None:
        return [f"{name}: graded test cells ({', '.join(sorted(tests))}) but no spec: no module of "
                f"dlcourse.grading declares ASSIGNMENT = AssignmentSpec(assignment={name!r}, ...)"]
    problems = []
    blocks = spec.hidden_blocks()
    for gid, cell in tests.items():
        if HIDDEN_BEGIN in cell.source and gid not in blocks:
            problems.append(f"{name}: test cell {gid} has a hidden block that no spec of {spec.module} "
                            "declares (its hidden test would not be repeated from a spec)")
    for gid in blocks:
        if gid not in tests:
            problems.append(f"{name}: {spec.module} declares a hidden test in cell {gid}, which is not an "
                            "autograded test cell of the notebook")
    references = found.references
    if references is not None and not references.is_file():
        problems.append(f"{name}: reference file {references.name} is missing from solutions/{name}/ "
                        f"(run 'course references {name}')")
    if spec.functions and spec.make_cases is None:
        problems.append(f"{name}: {spec.module} grades functions but says no make_cases")
    if found.handin is not None and not (found.folder / found.handin.data_file).is_file():
        problems.append(f"{name}: reserved split {found.handin.data_file} of the hand-in is missing from "
                        f"solutions/{name}/")
    if spec.functions and not found.catalogue.is_file():
        problems.append(f"{name}: mutant catalogue {CATALOGUE_FILE} is missing from solutions/{name}/ "
                        "(typical mistakes and alternative solutions of each graded function)")
    elif spec.functions:
        implementations = getattr(load_catalogue_module(found.catalogue), "IMPLEMENTATIONS", None)
        if implementations is None:
            problems.append(f"{name}: mutant catalogue {CATALOGUE_FILE} defines no IMPLEMENTATIONS")
        else:
            covered = {impl.grade_id for impl in implementations if not impl.correct}
            problems += [f"{name}: mutant catalogue {CATALOGUE_FILE} has no mutant of {f.function}"
                         for f in spec.functions if f.function not in covered]
    return problems
