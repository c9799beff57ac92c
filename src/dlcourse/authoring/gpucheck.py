"""`course gpu-check`: do the references and verdicts hold on this machine's accelerator?

Recomputes every hidden reference case with the solution on the default device
(a GPU when TensorFlow sees one) and reports the largest deviation from the
stored CPU references; then scores the mutant catalogue twice, on the default
device and with accelerators hidden, and reports whether every verdict agrees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dlcourse.authoring.mutants import score_implementations
from dlcourse.authoring.practical import catalogue_path, load_catalogue_module, practical
from dlcourse.authoring.references import compute
from dlcourse.grading.policy import TOLERANCE, relative_error
from dlcourse.grading.references import load_cases
from dlcourse.runner.course import Course


@dataclass
class GpuReport:
    assignment: str
    device: str
    max_deviation: float
    verdicts_equal: bool
    differing: list[str]


def accelerator() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "none (CPU only)"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{len(gpus)} GPU(s): {details.get('device_name', gpus[0].name)}"


def reference_deviation(course: Course, assignment: str) -> float:
    worst = 0.0
    found = practical(course, assignment)
    if found.spec is None or found.references is None:
        return worst
    stored = load_cases(found.references)
    for case in compute(course, found.spec):
        worst = max(worst, relative_error(case.expected, stored[case.name].expected))
    return worst


def _verdicts(course: Course, assignment: str, env: dict[str, str] | None) -> dict[tuple[str, str], bool]:
    module = load_catalogue_module(catalogue_path(course, assignment))
    results = score_implementations(course.source_notebook(assignment), list(module.IMPLEMENTATIONS),
                                    skip=getattr(module, "SKIP", ()), env=env)
    return {(v.implementation.name, test): ok for v in results for test, ok in v.passed.items()}


def gpu_check(course: Course, assignment: str) -> GpuReport:
    from dlcourse.grading.policy import grading_mode

    grading_mode()
    deviation = reference_deviation(course, assignment)
    device_run = _verdicts(course, assignment, env=None)
    cpu_run = _verdicts(course, assignment, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    differing = sorted(f"{impl} / {test}" for (impl, test), ok in device_run.items()
                       if cpu_run.get((impl, test)) != ok)
    return GpuReport(assignment, accelerator(), deviation, not differing, differing)


def format_report(report: GpuReport) -> str:
    verdict = "yes" if report.verdicts_equal else f"NO ({'; '.join(report.differing)})"
    return (f"{report.assignment}: device {report.device}; largest deviation from the CPU references "
            f"{report.max_deviation:.2e} (tolerance {TOLERANCE:g}); every verdict equals the CPU's: {verdict}")
