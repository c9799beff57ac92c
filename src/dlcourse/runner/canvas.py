"""Grades back into Canvas: fill the gradebook export a TA downloads, change nothing else.

Canvas's gradebook import wants the columns of its own export (Student, ID, SIS
User ID, SIS Login ID, Section, one column per assignment titled
``<title> (<id>)``); an unknown column becomes a new assignment. So the export
itself is the template: every row, every other column and the "Points
Possible" row are written back as read, and only the assignment's column is
filled -- with the total where grading is complete, blank where a written
answer still waits for a TA or nothing was submitted. Byte for byte: every
other field keeps its own quoting and each line its own line ending.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from dlcourse.errors import CourseError
from dlcourse.runner.gradebook import Total
from dlcourse.runner.untrusted import for_csv

#: Columns that identify a student, in the order a gradebook id is looked up.
ID_COLUMNS = ("ID", "SIS Login ID", "SIS User ID")
NAME_COLUMN = "Student"


@dataclass
class Export:
    """A Canvas gradebook export as read: header, rows, and how to write it back the same way."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    records: list[tuple[str, str]]  # each line as exported (header first): text, line ending
    bom: bool = False

    def column(self, title: str) -> int | None:
        return self.header.index(title) if title in self.header else None

    def student_rows(self) -> set[int]:
        """Indices of students' rows: not "Points Possible", not Canvas's other rows without an ID."""
        id_col = self.column("ID")
        return {i for i, r in enumerate(self.rows) if id_col is not None and id_col < len(r)
                and r[id_col].strip() and not r[0].strip().startswith("Points Possible")}


@dataclass
class CanvasReport:
    path: Path
    column: str
    filled: dict[str, str] = field(default_factory=dict)  # gradebook id -> total written
    pending: list[str] = field(default_factory=list)  # written answers wait for a TA: left blank
    not_submitted: list[str] = field(default_factory=list)  # in the export, no submission: left blank
    unknown: list[str] = field(default_factory=list)  # submissions whose id is not in the export
    warnings: list[str] = field(default_factory=list)


def read_export(path: Path) -> Export:
    """Parse a Canvas gradebook export; a clear one-line error for anything else."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CourseError(f"--canvas-gradebook: cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CourseError(f"--canvas-gradebook: {path} is not UTF-8 text (export it from Canvas's "
                          "gradebook as CSV)") from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise CourseError(f"--canvas-gradebook: {path} is not valid CSV ({exc})") from None
    if not rows or NAME_COLUMN not in rows[0] or "ID" not in rows[0]:
        raise CourseError(f"--canvas-gradebook: {path} is not a Canvas gradebook export "
                          f"(its first row must have the columns '{NAME_COLUMN}' and 'ID')")
    records = _records(text)
    if len(records) != len(rows):
        raise CourseError(f"--canvas-gradebook: {path} has unbalanced quotes; export it from Canvas again")
    export = Export(path, rows[0], rows[1:], records, bom=raw.startswith(b"\xef\xbb\xbf"))
    if not export.student_rows():  # a header alone, or a list without IDs: nothing to match or fill
        raise CourseError(f"--canvas-gradebook: {path} lists no student (no row with an ID under the header); "
                          "export the entire gradebook from Canvas")
    return export


def _records(text: str) -> list[tuple[str, str]]:
    """The CSV's records as written (a quoted field may hold a line break), with their line endings."""
    records, start, quoted, i = [], 0, False, 0
    while i < len(text):
        char = text[i]
        if char == '"':
            quoted = not quoted
        elif char in "\r\n" and not quoted:
            end = i
            if char == "\r" and text[i + 1:i + 2] == "\n":
                i += 1
            records.append((text[start:end], text[end:i + 1]))
            start = i + 1
        i += 1
    if start < len(text):
        records.append((text[start:], ""))
    return records


def _raw_fields(record: str) -> list[str]:
    """A record's fields as written, quotes included."""
    fields, start, quoted = [], 0, False
    for i, char in enumerate(record):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append(record[start:i])
            start = i + 1
    fields.append(record[start:])
    return fields


def find_column(export: Export, assignment: str, title: str | None = None) -> str:
    """The assignment's column: ``title`` exactly, or the one whose title starts with the id."""
    if title is not None:
        if title not in export.header:
            raise CourseError(f"--canvas-column: no column {title!r} in {export.path.name}")
        return title
    matches = [h for h in export.header if h.strip().lower().startswith(assignment.lower())]
    if len(matches) == 1:
        return matches[0]
    others = ", ".join(repr(h) for h in export.header[len(ID_COLUMNS) + 2:]) or "none"
    if not matches:
        raise CourseError(f"--canvas-gradebook: no column of {export.path.name} starts with {assignment!r} "
                          f"(columns after the student's: {others}); name it with --canvas-column")
    raise CourseError(f"--canvas-gradebook: several columns start with {assignment!r} "
                      f"({', '.join(repr(m) for m in matches)}); name one with --canvas-column")


def split_name(sortable: str) -> tuple[str, str]:
    """Canvas's "Last, First" as (first, last)."""
    last, _, first = sortable.partition(",")
    return first.strip(), last.strip()


def _row_ids(export: Export, row: list[str]) -> list[str]:
    ids = []
    for title in ID_COLUMNS:
        col = export.column(title)
        if col is not None and col < len(row) and row[col].strip():
            ids.append(row[col].strip())
    return ids


def match_students(export: Export, students: set[str]) -> dict[int, str]:
    """Export row index -> gradebook student id, matched on ID, then SIS Login ID, then SIS User ID."""
    matched = {}
    for index in sorted(export.student_rows()):
        hit = next((i for i in _row_ids(export, export.rows[index]) if i in students), None)
        if hit is not None:
            matched[index] = hit
    return matched


def names(export: Export, students: set[str]) -> dict[str, tuple[str, str]]:
    """(first, last) of every gradebook student found in the export."""
    col = export.column(NAME_COLUMN)
    return {student: split_name(export.rows[i][col]) for i, student in match_students(export, students).items()
            if col is not None and export.rows[i][col].strip()}


def fill(export: Export, column: str, totals: dict[str, Total], dest: Path) -> CanvasReport:
    """Write ``dest``: the export with ``column`` filled from the gradebook's ``totals``."""
    col = export.header.index(column)
    report = CanvasReport(dest, column)
    matched = match_students(export, set(totals))
    records = list(export.records)
    display, id_col = export.column(NAME_COLUMN), export.column("ID")
    for index in sorted(export.student_rows()):
        row = export.rows[index]
        who = f"{row[display]} ({row[id_col]})" if display is not None else row[id_col]
        student = matched.get(index)
        total = totals.get(student) if student is not None else None
        value = ""
        if total is None:
            report.not_submitted.append(who)
        elif total.pending:
            report.pending.append(who)
        else:
            # The one cell written: a number the grader computed (for_csv keeps numbers as numbers).
            value = report.filled[student] = for_csv(round(float(total.score), 2))
        text, ending = records[index + 1]
        fields = _raw_fields(text)
        fields += [""] * (col + 1 - len(fields))
        fields[col] = value
        records[index + 1] = (",".join(fields), ending)
    report.unknown = sorted(set(totals) - set(matched.values()))
    maxima = {t.max_score for t in totals.values()}
    points = next((r for r in export.rows if r and r[0].strip().startswith("Points Possible")), None)
    if points is not None and col < len(points) and maxima:
        try:
            possible = float(points[col])
        except ValueError:
            possible = None
        if possible is not None and possible not in maxima:
            report.warnings.append(f"Canvas's points possible for {column!r} is {possible:g}, the gradebook's "
                                   f"maximum {max(maxima):g}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(record + ending for record, ending in records)
    dest.write_bytes((b"\xef\xbb\xbf" if export.bom else b"") + text.encode())
    return report
