"""Every practical's :class:`~dlcourse.grading.spec.AssignmentSpec`, found, not registered.

A spec module is any module of this package that defines ``ASSIGNMENT``, an
``AssignmentSpec``; the practical it belongs to is the one its ``assignment`` names. Adding
a practical adds a module here (`course new` writes one) and edits no list.
"""

from __future__ import annotations

import importlib
import pkgutil

from dlcourse.errors import CourseError
from dlcourse.grading.spec import AssignmentSpec

#: The module-level name a spec module declares its practical under.
SPEC_NAME = "ASSIGNMENT"


def assignment_specs() -> dict[str, AssignmentSpec]:
    """Practical id -> its spec, from every spec module of :mod:`dlcourse.grading`."""
    import dlcourse.grading as package

    found: dict[str, AssignmentSpec] = {}
    infos = pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}.")
    for info in sorted(infos, key=lambda i: i.name):
        module = importlib.import_module(info.name)
        spec = getattr(module, SPEC_NAME, None)
        if not isinstance(spec, AssignmentSpec):
            continue
        if spec.assignment in found:
            raise CourseError(f"two spec modules declare practical {spec.assignment!r}: "
                              f"{found[spec.assignment].module} and {spec.module}")
        found[spec.assignment] = spec
    return found


def assignment_spec(assignment: str) -> AssignmentSpec | None:
    """The spec of practical ``assignment``, or None where it has none."""
    return assignment_specs().get(assignment)


def spec_modules() -> list[str]:
    """The spec modules' names (the student side ships them)."""
    return sorted(spec.module for spec in assignment_specs().values())
