"""What `course grade` keeps per student between runs: a record of the last grading.

A record says how the submission was graded (the outcome: verdicts, findings, time, memory,
the reason and whose fault a failure was), from which inputs (fingerprints of the submission,
its time and the assignment's grading inputs), and which gradebook state its feedback was
written for. The next run compares inputs to grade only what changed, and feedback is written
again only when its state moved. One JSON file per student in
``grades/records/<assignment>/<student>.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlcourse.runner.autograde import FAULT_SUBMISSION, Outcome
from dlcourse.runner.course import Course


@dataclass(frozen=True)
class Inputs:
    """Fingerprints of what a submission was graded from; "" where unknown."""

    submission: str = ""  # the files handed in (their time apart)
    timestamp: str = ""  # the submission time, as handed in
    assignment: str = ""  # the gradebook's graded cells and the hidden files


@dataclass
class Record:
    """The last grading of one student's submission."""

    outcome: Outcome
    inputs: Inputs = field(default_factory=Inputs)
    #: the gradebook state (:func:`dlcourse.runner.gradebook.grading_state`) the feedback was
    #: written for; None while no feedback was written
    feedback: str | None = None

    @property
    def student(self) -> str:
        return self.outcome.student

    @property
    def blameless(self) -> bool:
        """Not graded for a reason not its own (a dead worker, a machine that could not confine
        it, a classmate's sabotage): the next run grades it again, whatever else changed."""
        return not self.outcome.ok and self.outcome.fault != FAULT_SUBMISSION

    def current(self, inputs: Inputs) -> bool:
        """Graded from exactly these inputs, and not blamelessly failed."""
        return self.inputs == inputs and not self.blameless

    def resubmitted(self, inputs: Inputs) -> bool:
        """The student handed in something else since (an unknown earlier submission is not)."""
        return bool(self.inputs.submission) and self.inputs.submission != inputs.submission

    def to_json(self) -> dict:
        outcome = self.outcome
        data = {"student": outcome.student, "ok": outcome.ok, "reason": outcome.reason,
                "seconds": round(outcome.seconds, 2), "peak_memory": outcome.peak_memory,
                "findings": outcome.findings, "verdicts": [asdict(v) for v in outcome.verdicts],
                "device": outcome.device, "fault": outcome.fault, **asdict(self.inputs)}
        if self.feedback is not None:
            data["feedback"] = self.feedback
        return data

    @classmethod
    def from_json(cls, data: dict) -> Record:
        inputs = Inputs(**{k: str(data.get(k) or "") for k in ("submission", "timestamp", "assignment")})
        feedback = data.get("feedback")
        return cls(Outcome.from_json(data), inputs, None if feedback is None else str(feedback))


def path(course: Course, assignment: str, student: str) -> Path:
    return course.grades / "records" / assignment / f"{student}.json"


def read(course: Course, assignment: str, student: str) -> Record | None:
    """The student's record, or None where there is none (or it cannot be read)."""
    try:
        data = json.loads(path(course, assignment, student).read_text())
        return Record.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def write(course: Course, assignment: str, record: Record) -> None:
    target = path(course, assignment, record.student)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record.to_json(), indent=1))


def note_feedback(course: Course, assignment: str, student: str, state: str) -> None:
    """Remember that the student's feedback was written for gradebook ``state``."""
    record = read(course, assignment, student)
    if record is not None:
        record.feedback = state
        write(course, assignment, record)
