"""How far correct and wrong implementations sit from the grading tolerance.

For every reference case of every assignment with a mutant catalogue: the
solution's relative error under simulated TF32 rounding (must stay well below
the tolerance) and the smallest error of any mutant that produces an output
of the right shape (must be at least 10x the tolerance). Prints a table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    from test_grading_policy import _error, define

    from dlcourse.authoring.practical import load_catalogue_module
    from dlcourse.grading import TOLERANCE
    from dlcourse.grading.inception import make_cases
    from dlcourse.runner.notebooks import cells_by_grade_id, read_notebook, strip_markers

    cells = cells_by_grade_id(read_notebook(REPO / "solutions/inception/inception.ipynb"))
    solution = define("\n\n".join(strip_markers(cells[g].source)
                                  for g in ("inception_module", "auxiliary_classifier")))
    cases = [c for c in make_cases(solution["inception_module"], solution["auxiliary_classifier"])
             if c.name.startswith(("module", "aux"))]  # the counting cases have no rounding
    impls = load_catalogue_module(REPO / "solutions/inception/mutants.py").IMPLEMENTATIONS
    print(f"tolerance {TOLERANCE:g} (relative to the largest expected magnitude)")
    print(f"{'case':<18} {'TF32 error':>11} {'/ tol':>7} {'closest mutant':>15} {'/ tol':>7}  mutant")
    for case in cases:
        prefix = "inception_module" if case.name.startswith("module") else "auxiliary_classifier"
        tf32 = _error(solution, case, simulate_tf32=True)
        mutant_errors = [(_error(define(i.source), case), i.name) for i in impls
                         if i.grade_id == prefix and not i.correct]
        finite = [(e, n) for e, n in mutant_errors if np.isfinite(e)]
        closest, name = min(finite) if finite else (float("inf"), "(all fail structurally)")
        print(f"{case.name:<18} {tf32:11.2e} {tf32 / TOLERANCE:7.3f} {closest:15.2e} "
              f"{closest / TOLERANCE:7.1f}  {name}")


if __name__ == "__main__":
    main()
