"""The per-student record of `course grade`: what decides that a submission is graded again."""

from __future__ import annotations

import json

from dlcourse.runner import records
from dlcourse.runner.autograde import FAULT_GRADER, FAULT_SUBMISSION, Outcome
from dlcourse.runner.course import Course
from dlcourse.runner.records import Inputs, Record
from dlcourse.runner.repeat import Verdict

INPUTS = Inputs("sub-digest", "2026-01-01 10:00:00 UTC", "assignment-digest")


def test_a_record_round_trips_in_the_file_format_of_earlier_runs(tmp_path):
    course = Course(tmp_path)
    outcome = Outcome("ann", True, seconds=1.23456, peak_memory=7, findings=["edited test"],
                      verdicts=[Verdict("test_f", False, "wrong", "f")], device="cpu")
    records.write(course, "tiny", Record(outcome, INPUTS))
    data = json.loads(records.path(course, "tiny", "ann").read_text())
    assert data == {"student": "ann", "ok": True, "reason": "", "seconds": 1.23, "peak_memory": 7,
                    "findings": ["edited test"], "device": "cpu", "fault": "",
                    "verdicts": [{"test_id": "test_f", "passed": False, "message": "wrong", "function": "f",
                                  "without_frameworks": False}],
                    "submission": "sub-digest", "timestamp": "2026-01-01 10:00:00 UTC",
                    "assignment": "assignment-digest"}
    back = records.read(course, "tiny", "ann")
    assert back.inputs == INPUTS and back.feedback is None
    assert back.outcome.verdicts == outcome.verdicts and back.outcome.seconds == 1.23
    records.note_feedback(course, "tiny", "ann", "state-1")
    assert records.read(course, "tiny", "ann").feedback == "state-1"
    records.note_feedback(course, "tiny", "nobody", "state-1")  # no record: nothing written
    assert records.read(course, "tiny", "nobody") is None


def test_what_is_graded_again():
    graded = Record(Outcome("ann", True), INPUTS)
    assert graded.current(INPUTS) and not graded.resubmitted(INPUTS)
    changed = Inputs("other", INPUTS.timestamp, INPUTS.assignment)
    assert not graded.current(changed) and graded.resubmitted(changed)
    assert not graded.current(Inputs("sub-digest", INPUTS.timestamp, "new hidden test"))
    # a failure of its own stays; one of the grader's (a dead worker, no confinement) is retried
    assert Record(Outcome("ann", False, "limit", fault=FAULT_SUBMISSION), INPUTS).current(INPUTS)
    assert not Record(Outcome("ann", False, "no bwrap", fault=FAULT_GRADER), INPUTS).current(INPUTS)
    # an earlier record without a submission digest does not count as a resubmission
    assert not Record(Outcome("ann", True)).resubmitted(INPUTS)


def test_an_unreadable_record_is_none(tmp_path):
    course = Course(tmp_path)
    path = records.path(course, "tiny", "bob")
    path.parent.mkdir(parents=True)
    for text in ("not json", "[]", '{"ok": true}'):
        path.write_text(text)
        assert records.read(course, "tiny", "bob") is None
