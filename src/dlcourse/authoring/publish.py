"""`course publish DEST [--zip] [--check]`: the student edition, and the proof that it holds no answers.

This repository holds every answer, so students get an edition of their own:
lectures with outputs, the released assignments, the public data, the student
side of ``dlcourse`` (:func:`student_side`), a student README, the pins and a
Makefile that sets up and opens JupyterLab. Every publish ends with a leak scan
that compares the edition *by content* with what must never reach students:
the text of every solution region and hidden test of the source notebooks, the
bytes and arrays of every file under ``solutions/`` (references, reserved
splits, reference models), whatever is renamed or repacked.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import shutil
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from dlcourse.errors import CourseError
from dlcourse.runner.archives import zip_bytes
from dlcourse.runner.course import Course
from dlcourse.runner.nbgrader_plugins import CATALOGUE_FILE, is_handin, is_hidden
from dlcourse.runner.notebooks import nbgrader_meta, read_notebook

#: The student side of dlcourse besides the practicals' spec modules: every module the
#: lecture and assignment notebooks import, transitively, plus the edition's own entry
#: points. tests/test_publish.py fails when a notebook needs a module that does not ship or a
#: shipped module imports one that does not.
STUDENT_CORE: tuple[str, ...] = (
    "dlcourse",
    "dlcourse.errors",
    "dlcourse.runtime",
    "dlcourse.architectures",
    "dlcourse.figures",
    "dlcourse.experiments",
    "dlcourse.data",
    "dlcourse.data._raster",
    "dlcourse.data.cardiac",
    "dlcourse.data.checksums",
    "dlcourse.data.ct",
    "dlcourse.data.errors",
    "dlcourse.data.npzio",
    "dlcourse.data.paths",
    "dlcourse.data.plots",
    "dlcourse.data.ppg",
    "dlcourse.data.public",
    "dlcourse.data.signals",
    # the checks visible test cells call; they hold no reference outputs (the scan proves it)
    "dlcourse.grading",
    "dlcourse.grading.compare",
    "dlcourse.grading.handin",
    "dlcourse.grading.models",
    "dlcourse.grading.policy",
    "dlcourse.grading.references",
    "dlcourse.grading.spec",
    "dlcourse.grading.weights",
    # the edition's `course validate`, the notebooks' Colab setup, JupyterLab's nbgrader panels
    "dlcourse.validate",
    "dlcourse.colab",
    "dlcourse.lab_exchange",
)


def student_side(course: Course) -> tuple[str, ...]:
    """Every module that ships: the core, and each practical's spec module that a published
    notebook imports (a visible test that calls its checks), found rather than listed."""
    from dlcourse.grading.practicals import spec_modules

    src = course.root / "src"
    imported: set[str] = set()
    for nb in published_notebooks(course):
        imported |= notebook_imports(nb, src)
    return tuple(dict.fromkeys([*STUDENT_CORE, *(m for m in spec_modules() if m in imported)]))


#: Student-side modules no notebook imports: what students run besides the notebooks
#: (the `course` command, the Colab setup, the edition's nbgrader_config.py).
STUDENT_ENTRY_POINTS: tuple[str, ...] = ("dlcourse.validate", "dlcourse.colab", "dlcourse.lab_exchange")
#: Non-Python files of the student side, relative to the package.
STUDENT_PACKAGE_DATA: tuple[str, ...] = ("py.typed", "data/checksums.json")
#: The course's configuration of the edition (repository root).
EDITION_CONFIG = "edition.toml"
TEMPLATES = Path(__file__).with_name("edition")
#: Marks a folder as an edition, so that publishing over it may replace its files.
MARKER = ".course-edition"
#: Normalised secret lines shorter than this are too common to mean anything
#: (``for t in range(steps):``, ``x, skips = inputs, []``).
MIN_LINE = 24
#: Arrays with fewer elements are too small to identify anything.
MIN_ARRAY = 32
TEXT_SUFFIXES = {".ipynb", ".py", ".md", ".txt", ".json", ".toml", ".cfg", ".yml", ".yaml", ".csv", ".html",
                 ".tex", ".rst", ""}
_REGION = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")
_CHECK_CALL = re.compile(r"^[A-Z][A-Z0-9_]*\.check\(\w*\)$")
#: Generic lines: imports, brackets, short statements, a model's input layer.
_TRIVIAL = re.compile(r"^(import \S+( as \S+)?|from \S+ import [\w, ]+|[\W_]*|(return|raise|pass|else|try)\b.{0,12}"
                      r"|\w+ = keras\.Input\(.*\))$")


# ----------------------------------------------------------------- the student side


def module_file(src: Path, module: str) -> Path | None:
    """The file of ``module`` under the source folder ``src`` (package or module), if any."""
    path = src.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_modules(code: str, package: str, src: Path) -> set[str]:
    """dlcourse modules that ``code`` imports anywhere (function bodies included), with their parents."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "dlcourse")
        elif isinstance(node, ast.ImportFrom):
            base = (package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else [])
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module.split(".")[0] != "dlcourse":
                continue
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names if module_file(src, f"{module}.{a.name}"))
    return {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 2)}


def module_imports(src: Path, module: str) -> set[str]:
    """dlcourse modules that one module of the package imports."""
    path = module_file(src, module)
    if path is None:
        raise CourseError(f"no module {module} under {src}")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imported_modules(path.read_text(), package, src)


def notebook_imports(path: Path, src: Path) -> set[str]:
    """dlcourse modules a notebook's code cells import (shell and magic lines skipped)."""
    found: set[str] = set()
    for cell in read_notebook(path).cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(("!", "%")))
        try:
            found |= imported_modules(code, "", src)
        except SyntaxError:
            continue  # a student-facing cell may hold a placeholder that is not Python yet
    return found


def closure(src: Path, roots: Iterable[str]) -> set[str]:
    """``roots`` and every dlcourse module they import, transitively."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(module_imports(src, module) - seen)
    return seen


def published_notebooks(course: Course) -> list[Path]:
    """Lecture and released assignment notebooks, the notebooks an edition holds."""
    lectures = sorted((course.root / "lectures").glob("*.ipynb"))
    return lectures + sorted(course.assignments.glob("*/*.ipynb"))


def check_student_side(course: Course, src: Path) -> None:
    """Raise when a notebook needs, or a student module imports, a module that does not ship."""
    allowed = set(student_side(course))
    for nb in published_notebooks(course):
        missing = sorted(notebook_imports(nb, src) - allowed)
        if missing:
            raise CourseError(f"{nb.relative_to(course.root)} imports {', '.join(missing)}, which is not "
                              "student side (dlcourse.authoring.publish.student_side)")
    for module in sorted(allowed):
        missing = sorted(module_imports(src, module) - allowed)
        if missing:
            raise CourseError(f"student-side {module} imports TA-side {', '.join(missing)}")


# ----------------------------------------------------------------- what must not leak


def normalise(line: str) -> str:
    return " ".join(line.split())


def is_trivial(line: str) -> bool:
    """Lines that any code has (imports, brackets, short statements): no evidence of a leak.

    A hidden test's call of its check (``SIGMOID.check(sigmoid)``) counts however short it is.
    """
    if _CHECK_CALL.match(line):
        return False
    return len(line) < MIN_LINE or bool(_TRIVIAL.match(line))


def _regions(source: str) -> Iterator[tuple[str, str]]:
    """(kind, line) for each line inside a SOLUTION or HIDDEN TESTS region."""
    kind = None
    for line in source.splitlines():
        marker = _REGION.match(line)
        if marker:
            kind = marker.group(2) if marker.group(1) == "BEGIN" else None
        elif kind:
            yield kind, line


def array_digest(array) -> str:
    import numpy as np

    array = np.ascontiguousarray(array)
    head = f"{array.dtype.str}{array.shape}".encode()
    return hashlib.sha256(head + array.tobytes()).hexdigest()


def _npy_members(data: bytes) -> Iterator[tuple[str, object]]:
    """(member name, array) of every .npy member of a zip (an .npz), never unpickling."""
    import numpy as np

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            if name.endswith(".npy"):
                try:
                    yield name, np.lib.format.read_array(io.BytesIO(zf.read(name)), allow_pickle=False)
                except ValueError:
                    continue


@dataclass
class Secrets:
    """Everything an edition must not contain, by content: text lines, file bytes, arrays."""

    lines: dict[str, str] = field(default_factory=dict)  # normalised line -> where it comes from
    files: dict[str, str] = field(default_factory=dict)  # sha256 of bytes -> file
    arrays: dict[str, str] = field(default_factory=dict)  # array digest -> file and member

    @classmethod
    def of(cls, course: Course) -> Secrets:
        secrets = cls()
        public: set[str] = set()
        for assignment in course.assignment_ids():
            nb = read_notebook(course.source_notebook(assignment))
            for index, cell in enumerate(nb.cells):
                where = f"{assignment}/{nbgrader_meta(cell).get('grade_id') or f'cell {index + 1}'}"
                regions = list(_regions(cell.source))
                for kind, line in regions:
                    secrets.add_line(line, f"{'solution' if kind == 'SOLUTION' else 'hidden test'} {where}")
                if nbgrader_meta(cell).get("solution") and not regions:  # answer keys, whole cells
                    for line in cell.source.splitlines():
                        secrets.add_line(line, f"solution {where}")
                if not regions and not nbgrader_meta(cell).get("solution"):
                    public.update(normalise(ln) for ln in cell.source.splitlines())
                elif regions:
                    inside = {normalise(ln) for _, ln in regions}
                    public.update(normalise(ln) for ln in cell.source.splitlines()
                                  if normalise(ln) not in inside)
        for line in public:  # released text is not secret, wherever else it appears
            secrets.lines.pop(line, None)
        # A mutant catalogue repeats the released signatures and the student side's code around
        # its mistakes and alternative solutions: only its other lines are secret.
        shipped = public | _student_code_lines(course)
        for path in sorted(p for p in course.solutions.rglob("*") if p.is_file()):
            if path.suffix == ".ipynb" and path.stem == path.parent.name:
                continue  # the source notebooks: their secret text is collected above
            secrets.add_file(path.relative_to(course.root).as_posix(), path.read_bytes(),
                             public=shipped if path.name == CATALOGUE_FILE else frozenset())
        return secrets

    def add_line(self, line: str, where: str) -> None:
        text = normalise(line)
        if not is_trivial(text):
            self.lines.setdefault(text, where)

    def add_file(self, name: str, data: bytes, public: set[str] | frozenset[str] = frozenset()) -> None:
        """The file's bytes, zip members and arrays; for a text file, each line not in ``public``."""
        self.files.setdefault(hashlib.sha256(data).hexdigest(), name)
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for member in zf.namelist():
                    if not member.endswith("/"):
                        self.files.setdefault(hashlib.sha256(zf.read(member)).hexdigest(), f"{name}:{member}")
            for member, array in _npy_members(data):
                if array.size >= MIN_ARRAY:
                    self.arrays.setdefault(array_digest(array), f"{name}:{member}")
        elif name.endswith(".npy"):
            import numpy as np

            try:
                array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
            except ValueError:
                return
            if array.size >= MIN_ARRAY:
                self.arrays.setdefault(array_digest(array), name)
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                return
            for line in text.splitlines():
                if normalise(line) not in public:
                    self.add_line(line, f"hidden file {name}")


def _student_code_lines(course: Course) -> set[str]:
    """Every line of the student side of ``dlcourse`` as the course holds it (it ships)."""
    src = course.root / "src"
    lines: set[str] = set()
    for module in student_side(course):
        path = module_file(src, module)
        if path is not None:
            lines.update(normalise(line) for line in path.read_text(encoding="utf-8").splitlines())
    return lines


def _text_of(path: Path, data: bytes) -> list[str] | None:
    """The lines of a text file; for a notebook, every string in it (sources, outputs, metadata)."""
    if path.suffix not in TEXT_SUFFIXES and path.name != "Makefile":
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix != ".ipynb":
        return text.splitlines()
    lines: list[str] = []

    def strings(value: object) -> None:
        if isinstance(value, str):
            lines.extend(value.splitlines())
        elif isinstance(value, list):
            for item in value:
                strings(item)
        elif isinstance(value, dict):
            for item in value.values():
                strings(item)
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError:
        return text.splitlines()
    # a notebook's source is a list of lines; join each cell's text before splitting it again
    for cell in notebook.get("cells", []) if isinstance(notebook, dict) else []:
        if isinstance(cell, dict) and isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
        for out in cell.get("outputs", []) if isinstance(cell, dict) else []:
            for key, value in (out.get("data", {}) if isinstance(out, dict) else {}).items():
                if isinstance(value, list):
                    out["data"][key] = "".join(value)
            if isinstance(out, dict) and isinstance(out.get("text"), list):
                out["text"] = "".join(out["text"])
    strings(notebook)
    return lines


def scan_file(relative: str, data: bytes, secrets: Secrets, limit: int = 3) -> list[str]:
    """What one file of an edition holds that it must not (at most ``limit`` text findings)."""
    path = Path(relative)
    found: list[str] = []
    if {"solutions", "tests"} & set(path.parts[:-1]) or path.name in {"solutions", "tests"}:
        found.append(f"{relative}: under solutions/ or tests/")
    if is_hidden(path.name):
        found.append(f"{relative}: hidden file")
    digest = hashlib.sha256(data).hexdigest()
    if digest in secrets.files:
        what = "reference model" if is_handin(Path(secrets.files[digest]).name) else "copy of"
        found.append(f"{relative}: {what} {secrets.files[digest]}")
        return found
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                if member.endswith("/"):
                    continue
                inner = zf.read(member)
                if is_hidden(Path(member).name):
                    found.append(f"{relative}:{member}: hidden file")
                elif hashlib.sha256(inner).hexdigest() in secrets.files:
                    found.append(f"{relative}:{member}: copy of {secrets.files[hashlib.sha256(inner).hexdigest()]}")
        for member, array in _npy_members(data):
            source = secrets.arrays.get(array_digest(array))
            if source:
                found.append(f"{relative}:{member}: array equal to {source}")
        return found
    if path.suffix == ".npy":
        import numpy as np

        try:
            source = secrets.arrays.get(array_digest(np.lib.format.read_array(io.BytesIO(data),
                                                                              allow_pickle=False)))
        except ValueError:
            source = None
        if source:
            found.append(f"{relative}: array equal to {source}")
        return found
    lines = _text_of(path, data)
    if lines is None:
        return found
    text_findings = 0
    for number, line in enumerate(lines, start=1):
        text = normalise(line)
        marker = _REGION.match(line)
        where = secrets.lines.get(text)
        if marker or where:
            text_findings += 1
            if text_findings <= limit:
                found.append(f"{relative}:{number}: " + (f"nbgrader marker {text!r}" if marker else
                                                         f"line of the {where}: {text[:70]!r}"))
    if text_findings > limit:
        found.append(f"{relative}: {text_findings - limit} more such line(s)")
    return found


def scan(edition: Path, secrets: Secrets) -> list[str]:
    """Every leak in an edition folder, one line each (empty: clean)."""
    found: list[str] = []
    for path in sorted(edition.rglob("*")):
        relative = path.relative_to(edition)
        if relative.parts[0] in {".git", ".venv"} or not path.is_file() or path.is_symlink():
            if path.is_symlink():
                found.append(f"{relative.as_posix()}: a symbolic link (an edition holds plain files)")
            continue
        found.extend(scan_file(relative.as_posix(), path.read_bytes(), secrets))
    return found


# ----------------------------------------------------------------- writing an edition


def edition_config(course: Course) -> dict[str, str]:
    """The course's settings for its edition (``edition.toml``)."""
    path = course.root / EDITION_CONFIG
    if not path.is_file():
        raise CourseError(f"{path} is missing: it says where students get the edition (see README)")
    try:
        config = tomllib.loads(path.read_text()).get("edition", {})
    except tomllib.TOMLDecodeError as exc:
        raise CourseError(f"{path} is not valid TOML ({exc})") from None
    return {"title": str(config.get("title", "")), "location": str(config.get("location", ""))}


def _with_location(nb_path: Path, location: str) -> bytes:
    """A notebook's bytes, with the Colab setup cell pointed at the edition's location."""
    from dlcourse.colab import LOCATION_PREFIX

    data = nb_path.read_bytes()
    if LOCATION_PREFIX.encode() not in data:
        return data
    nb = read_notebook(nb_path)
    for cell in nb.cells:
        lines = cell.source.splitlines()
        if cell.cell_type != "code" or not any(ln.startswith(LOCATION_PREFIX) for ln in lines):
            continue
        if nbgrader_meta(cell).get("locked") or nbgrader_meta(cell).get("grade"):
            raise CourseError(f"{nb_path}: the Colab setup cell is an nbgrader cell; make it a plain cell "
                              "(publish fills in its location, which would change a checksummed cell)")
        cell.source = "\n".join(
            f'{LOCATION_PREFIX}"{location}"  # set by course publish (edition.toml)'
            if ln.startswith(LOCATION_PREFIX) else ln for ln in lines)
    return (nbformat.writes(nb) + "\n").encode()


def _pyproject(course: Course) -> str:
    project = tomllib.loads((course.root / "pyproject.toml").read_text())["project"]
    return (TEMPLATES / "pyproject.toml.in").read_text().format(
        version=project["version"], requires_python=json.dumps(project["requires-python"]),
        dependencies=json.dumps(project["dependencies"]))


def edition_files(course: Course) -> dict[str, bytes]:
    """Every file of the edition, by relative path: what `course publish` writes."""
    src = course.root / "src"
    check_student_side(course, src)
    config = edition_config(course)
    files: dict[str, bytes] = {MARKER: b"A student edition written by `course publish`; publishing again "
                                       b"replaces everything here except .git/.\n"}
    for name in ("README.md", "Makefile", "nbgrader_config.py", "gitignore"):
        text = (TEMPLATES / name).read_text().replace("{title}", config["title"] or "the course")
        files[".gitignore" if name == "gitignore" else name] = text.encode()
    # JupyterLab settings: no teaching tools or news pop-ups; the course's lab extension
    for path in sorted((TEMPLATES / "jupyter").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[f"jupyter/{path.relative_to(TEMPLATES / 'jupyter').as_posix()}"] = path.read_bytes()
    for path in sorted((course.root / "jupyter" / "labextensions").rglob("*")):
        if path.is_file():
            files[path.relative_to(course.root).as_posix()] = path.read_bytes()
    files["pyproject.toml"] = _pyproject(course).encode()
    for name in ("requirements.txt", "LICENSE", "LICENSE-CONTENT", EDITION_CONFIG):
        files[name] = (course.root / name).read_bytes()
    for nb in published_notebooks(course):
        files[nb.relative_to(course.root).as_posix()] = _with_location(nb, config["location"])
    for path in sorted(course.assignments.rglob("*")):  # other released files of an assignment
        relative = path.relative_to(course.root).as_posix()
        # models trained by running a release in place are nobody's hand-in: never published
        if path.is_file() and relative not in files and not is_handin(path.name) \
                and not _generated(path.relative_to(course.assignments)):
            files[relative] = path.read_bytes()
    for path in sorted((course.root / "data").iterdir()):
        if path.is_file() and not is_hidden(path.name):
            files[f"data/{path.name}"] = path.read_bytes()
    for module in student_side(course):
        path = module_file(src, module)
        assert path is not None  # check_student_side read every module
        files[path.relative_to(course.root).as_posix()] = path.read_bytes()
    for name in STUDENT_PACKAGE_DATA:
        files[f"src/dlcourse/{name}"] = (src / "dlcourse" / name).read_bytes()
    return files


@dataclass
class PublishReport:
    dest: Path
    files: int = 0
    bytes: int = 0
    stale: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    zip_path: Path | None = None
    warnings: list[str] = field(default_factory=list)


def _generated(relative: Path) -> bool:
    """Files that working in an edition creates (environment, caches, build info): not part of it."""
    return relative.parts[0] in {".git", ".venv"} or any(
        part in {"__pycache__", ".ipynb_checkpoints"} or part.endswith(".egg-info") for part in relative.parts)


def _existing(dest: Path) -> dict[str, Path]:
    return {p.relative_to(dest).as_posix(): p for p in sorted(dest.rglob("*"))
            if p.is_file() and not _generated(p.relative_to(dest))}


def _differences(files: dict[str, bytes], dest: Path) -> list[str]:
    have = _existing(dest) if dest.is_dir() else {}
    diffs = [f"missing {name}" for name in sorted(set(files) - set(have))]
    diffs += [f"unexpected {name}" for name in sorted(set(have) - set(files))]
    diffs += [f"outdated {name}" for name in sorted(set(files) & set(have)) if have[name].read_bytes() != files[name]]
    return diffs


def _refuse_foreign(dest: Path) -> None:
    """Publishing replaces a folder's files: only an earlier edition (or nothing) may be there."""
    if dest.exists() and not dest.is_dir():
        raise CourseError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(p.name != ".git" for p in dest.iterdir()) and not (dest / MARKER).is_file():
        raise CourseError(f"{dest} is not empty and holds no edition ({MARKER} missing); "
                          "choose a new or empty folder")


def _prepare(dest: Path) -> None:
    """Empty ``dest`` for a new edition, keeping .git (and a .venv set up inside it)."""
    _refuse_foreign(dest)
    if dest.is_dir():
        for path in [p for p in dest.iterdir() if p.name != ".git"]:
            if path.name == ".venv":
                continue  # a student's environment inside a test copy: not part of the edition
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    dest.mkdir(parents=True, exist_ok=True)


def publish(course: Course, dest: str | Path, make_zip: bool = False, check: bool = False) -> PublishReport:
    """Write (or with ``check``, compare) the edition at ``dest``; scan it for leaks either way.

    A non-empty ``stale`` or ``leaks`` in the report is a failure.
    """
    dest = Path(dest).resolve()
    if course.root in (dest, *dest.parents):
        raise CourseError(f"{dest} is inside the course repository; publish to a folder outside it "
                          "(students must never get the repository)")
    if not check:
        _refuse_foreign(dest)
    files = edition_files(course)
    report = PublishReport(dest, files=len(files), bytes=sum(len(b) for b in files.values()))
    if not edition_config(course)["location"]:
        report.warnings.append(f"{EDITION_CONFIG} sets no location: the notebooks' Colab setup cell "
                               "cannot install the course until it does")
    zip_path = dest.with_name(dest.name + ".zip") if make_zip else None
    secrets = Secrets.of(course)
    if check:
        if not dest.is_dir():
            raise CourseError(f"no edition at {dest}: run 'course publish {dest}' first")
        report.stale = _differences(files, dest)
        zipped = dest.with_name(dest.name + ".zip")
        if zipped.is_file() and zipped.read_bytes() != zip_bytes(files, dest.name):
            report.stale.append(f"outdated {zipped.name}")
        report.leaks = scan(dest, secrets)
        return report
    _prepare(dest)
    for name, data in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    report.leaks = scan(dest, secrets)
    if zip_path is not None and not report.leaks:
        zip_path.write_bytes(zip_bytes(files, dest.name))
        report.leaks = [f"{zip_path.name}:{line}" for line in scan_file("edition.zip", zip_path.read_bytes(), secrets)]
        report.zip_path = zip_path
    return report
