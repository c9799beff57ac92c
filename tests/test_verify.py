"""The repeat of hidden tests outside the kernel covers what it should."""

from __future__ import annotations

import pytest

from dlcourse.course import Course
from dlcourse.notebooks import grade_id, read_notebook
from dlcourse.verify import verified_test_ids

#: Hidden asserts that stay inside the kernel only: small arithmetic checks
#: (parameter counts, a sigmoid) where no reference outputs are involved.
KERNEL_ONLY = {"inception": {"test_conv_params", "test_params_inception"}, "lstm": {"test_sigmoid"}}


@pytest.mark.parametrize("assignment", ["inception", "residual", "lstm", "unet"])
def test_every_hidden_reference_test_is_repeated_outside_the_kernel(repo_course: Course, assignment):
    nb = read_notebook(repo_course.source_notebook(assignment))
    hidden = {grade_id(c) for c in nb.cells if "BEGIN HIDDEN TESTS" in c.source}
    verified = set(verified_test_ids(assignment))
    assert verified <= hidden, f"registry names cells the notebook lacks: {sorted(verified - hidden)}"
    assert hidden - verified == KERNEL_ONLY.get(assignment, set())
