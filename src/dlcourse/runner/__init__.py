"""TA side: grading submissions (runner, confinement, verification, gradebook, reports)."""
