"""`course validate`: the student's own check before submitting.

Runs the notebook in a fresh kernel through nbgrader's Validator (with the
course's stderr policy), then checks the files the notebook asks to hand in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dlcourse.errors import CourseError
from dlcourse.notebooks import grade_id, nbgrader_meta, read_notebook

CELL_TIMEOUT = 600


@dataclass
class CellProblem:
    grade_id: str
    message: str


@dataclass
class ValidationReport:
    notebook: Path
    passed: list[str] = field(default_factory=list)
    failed: list[CellProblem] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    handin: list[str] = field(default_factory=list)
    handin_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.changed or self.handin_problems)


def _last_line(error: str) -> str:
    from nbconvert.filters import strip_ansi

    lines = [ln.strip() for ln in strip_ansi(error).strip().splitlines() if ln.strip()]
    if lines == ["You did not provide a response."]:
        return "not answered yet"
    return lines[-1] if lines else "failed"


def handin_names(nb) -> list[str]:
    """Files the notebook asks the student to hand in (metadata ``dlcourse.handin``)."""
    return list(nb.metadata.get("dlcourse", {}).get("handin", []))


def check_handin(folder: Path, name: str) -> str:
    """Describe a handed-in file, raising CourseError when it is missing or unusable."""
    path = folder / name
    if not path.is_file():
        raise CourseError(f"{name} is missing: save it next to the notebook")
    if path.stat().st_size == 0:
        raise CourseError(f"{name} is empty")
    if path.suffix == ".keras":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:
            raise CourseError(f"{name} does not load as a Keras model ({type(exc).__name__}: {exc})") from None
        return f"{name}: loads; input {model.input_shape}, output {model.output_shape}"
    return f"{name}: present ({path.stat().st_size} bytes)"


def validate(path: str | Path) -> ValidationReport:
    """Execute ``path`` in a fresh kernel and report each test cell's verdict."""
    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, Execute
    from nbgrader.validator import Validator
    from traitlets.config import Config

    from dlcourse.nbgrader_plugins import StderrIsNotFailure

    path = Path(path).resolve()
    nb = read_notebook(path)
    report = ValidationReport(path)
    config = Config()
    config.Execute.timeout = CELL_TIMEOUT
    validator = Validator(config=config)
    validator.preprocessors = [CheckCellMetadata, ClearOutput, Execute, StderrIsNotFailure]
    try:
        results = validator.validate(str(path))
    except Exception as exc:
        raise CourseError(f"{path.name} could not be run ({type(exc).__name__}: {exc})") from None

    by_source = {cell.source.strip(): cell for cell in nb.cells}
    def name_of(entry: dict) -> str:
        cell = by_source.get(entry["source"])
        return (grade_id(cell) if cell is not None else None) or "unnamed cell"

    if "type_changed" in results:
        report.changed = [f"{name_of(e)} changed from {e['new_type']} to {e['old_type']}"
                          for e in results["type_changed"]]
        return report
    report.changed = [f"{name_of(e)} was edited (test cells must stay as released)"
                      for e in results.get("changed", [])]
    report.failed = [CellProblem(name_of(e), _last_line(e["raw_error"]))
                     for e in results.get("failed", [])]
    failed_ids = {p.grade_id for p in report.failed}
    report.passed = [
        gid for cell in nb.cells
        if (gid := grade_id(cell)) and nbgrader_meta(cell).get("grade")
        and cell.cell_type == "code" and gid not in failed_ids
    ]
    for name in handin_names(nb):
        try:
            report.handin.append(check_handin(path.parent, name))
        except CourseError as exc:
            report.handin_problems.append(str(exc))
    return report
