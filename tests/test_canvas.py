"""Filling a Canvas gradebook export: only the assignment's cells change, byte for byte."""

from __future__ import annotations

from dlcourse.runner import canvas
from dlcourse.runner.gradebook import Total

EXPORT = (
    '\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,"Residual blocks (88)",LSTM practical (4711),Notes\r\n'
    '    Points Possible,,,,,20.00,33.00,(read only)\r\n'
    '"Smith, Alice",101,"s101",asmith,"8DM50, 2026",17,,"line one\nline two"\r\n'
    '"Vries, Carol de",103,s103,cdevries,8DM50,,12,\r\n'
    '"Student, Test",999,,,8DM50,,,\r\n'
    '"Tanaka, Dave",105,s105,dtanaka,8DM50,,\r\n'
)


def test_only_the_assignment_column_changes(tmp_path):
    source = tmp_path / "export.csv"
    source.write_bytes(EXPORT.encode())
    export = canvas.read_export(source)
    column = canvas.find_column(export, "lstm")
    assert column == "LSTM practical (4711)"
    totals = {"101": Total(30.5, 33, False), "103": Total(25, 33, True), "asmith2": Total(1, 33, False)}
    report = canvas.fill(export, column, totals, tmp_path / "canvas_lstm.csv")
    expected = (EXPORT.replace('8DM50, 2026",17,,', '8DM50, 2026",17,30.5,')
                .replace("cdevries,8DM50,,12,", "cdevries,8DM50,,,")
                .replace("dtanaka,8DM50,,\r\n", "dtanaka,8DM50,,\r\n"))
    assert (tmp_path / "canvas_lstm.csv").read_bytes() == expected.encode()
    assert report.filled == {"101": "30.5"}
    assert report.pending == ["Vries, Carol de (103)"]
    assert report.not_submitted == ["Student, Test (999)", "Tanaka, Dave (105)"]
    assert report.unknown == ["asmith2"]
    assert report.warnings == []


def test_students_match_on_sis_login_and_points_possible_is_checked(tmp_path):
    source = tmp_path / "export.csv"
    source.write_bytes(EXPORT.encode())
    export = canvas.read_export(source)
    report = canvas.fill(export, "Residual blocks (88)", {"asmith": Total(18, 24, False)}, tmp_path / "out.csv")
    assert report.filled == {"asmith": "18"}
    assert report.warnings == ["Canvas's points possible for 'Residual blocks (88)' is 20, the gradebook's maximum 24"]
    assert canvas.names(export, {"asmith", "103"}) == {"asmith": ("Alice", "Smith"), "103": ("Carol de", "Vries")}
