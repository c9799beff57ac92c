"""`course publish`: the student edition holds what students need and, proven by content, no answers."""

from __future__ import annotations

import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbfactory import cell, notebook

from dlcourse import colab
from dlcourse.authoring.publish import (
    STUDENT_ENTRY_POINTS,
    Secrets,
    _with_location,
    closure,
    module_imports,
    notebook_imports,
    publish,
    published_notebooks,
    scan,
    student_side,
    zip_bytes,
)
from dlcourse.errors import CourseError
from dlcourse.runner.course import Course
from dlcourse.runner.notebooks import fill_solutions, read_notebook

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def course() -> Course:
    return Course(REPO)


@pytest.fixture(scope="module")
def secrets(course) -> Secrets:
    return Secrets.of(course)


@pytest.fixture(scope="module")
def edition(course, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("publish") / "edition"
    report = publish(course, dest, make_zip=True)
    assert report.leaks == []
    return dest


def _copy(edition: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "edition"
    shutil.copytree(edition, copy)
    return copy


# ----------------------------------------------------------------- the student side


def test_student_side_is_exactly_what_notebooks_import(course):
    needed = set(STUDENT_ENTRY_POINTS)
    for nb in published_notebooks(course):
        needed |= notebook_imports(nb, SRC)
    assert closure(SRC, needed) == set(student_side(course))


TA_PACKAGES = ("dlcourse.runner", "dlcourse.authoring", "dlcourse.cli")


def test_a_student_kernel_loads_no_ta_code(course):
    """What the notebooks import, imported for real in a fresh interpreter (not read from the
    source): no module of the runner, the authoring tools or the CLI comes along."""
    needed = set(STUDENT_ENTRY_POINTS)
    for nb in published_notebooks(course):
        needed |= notebook_imports(nb, SRC)
    code = ("import importlib, sys\n"
            f"for m in {sorted(needed)!r}: importlib.import_module(m)\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] == 'dlcourse')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(proc.stdout.split())
    assert needed <= loaded
    assert not [m for m in loaded if m.startswith(TA_PACKAGES)], "a student import pulls in the TA side"
    assert loaded <= set(student_side(course)), loaded - set(student_side(course))


@pytest.mark.parametrize("module", student_side(Course(REPO)))
def test_no_student_module_imports_a_ta_module(course, module):
    assert module_imports(SRC, module) <= set(student_side(course)), f"{module} imports TA-side code"


def test_imports_are_found_in_function_bodies_and_relative_forms(tmp_path):
    pkg = tmp_path / "dlcourse"
    (pkg / "data").mkdir(parents=True)
    for name in ("__init__.py", "grade.py", "data/__init__.py", "data/paths.py"):
        (pkg / name).write_text("")
    (pkg / "data" / "loader.py").write_text(
        "from .paths import x\n\ndef f():\n    from dlcourse import grade\n    return grade\n")
    assert module_imports(tmp_path, "dlcourse.data.loader") == {
        "dlcourse", "dlcourse.data", "dlcourse.data.paths", "dlcourse.grade"}


# ----------------------------------------------------------------- the edition


def test_edition_holds_what_students_need_and_nothing_of_the_ta(course, edition):
    files = {p.relative_to(edition).as_posix() for p in edition.rglob("*") if p.is_file()}
    for name in ("README.md", "Makefile", "requirements.txt", "pyproject.toml", "nbgrader_config.py",
                 "LICENSE", "LICENSE-CONTENT", "data/README.md", "data/cardiac_train.npz",
                 "src/dlcourse/validate.py", "src/dlcourse/colab.py", "src/dlcourse/data/checksums.json"):
        assert name in files
    for nb in published_notebooks(course):  # outputs kept
        outputs = [c.get("outputs") for c in read_notebook(nb).cells]
        assert [c.get("outputs") for c in read_notebook(edition / nb.relative_to(REPO)).cells] == outputs
    modules = {p.removeprefix("src/").removesuffix(".py").replace("/", ".").removesuffix(".__init__")
               for p in files if p.startswith("src/") and p.endswith(".py")}
    assert modules == set(student_side(course))
    for absent in ("grading.practicals", "data.regenerate"):
        assert f"src/dlcourse/{absent.replace('.', '/')}.py" not in files
    for package in ("runner", "authoring", "cli"):  # the TA side lives in these subpackages
        assert not any(f.startswith(f"src/dlcourse/{package}/") for f in files)
    assert not [f for f in files if "hidden_" in f or f.startswith(("solutions/", "tests/", "examples/"))]
    assert (edition / "Makefile").read_text().count("\nsetup:") == 1
    # the edition's lab settings: no teaching tool, no news, the course's Validate note, terminals find `course`
    for name in ("jupyter/labconfig/page_config.json", "jupyter/jupyter_server_config.py",
                 "jupyter/labextensions/dlcourse-lab/package.json",
                 "jupyter/labextensions/dlcourse-lab/static/remoteEntry.js"):
        assert name in files
    disabled = json.loads((edition / "jupyter/labconfig/page_config.json").read_text())["disabledExtensions"]
    for plugin in ("formgrader", "create-assignment", "course-list", "menu"):
        assert disabled[f"@jupyter/nbgrader:{plugin}"] is True
    assert disabled["@jupyterlab/apputils-extension:announcements"] is True
    assert 'JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter' in (edition / "Makefile").read_text()
    assert "course = \"dlcourse.validate:main\"" in (edition / "pyproject.toml").read_text()
    assert (edition / "requirements.txt").read_bytes() == (REPO / "requirements.txt").read_bytes()


def test_check_passes_then_fails_when_stale(course, edition, tmp_path):
    assert publish(course, edition, check=True).stale == []
    copy = _copy(edition, tmp_path)
    for generated in ("src/dlcourse.egg-info/PKG-INFO", "src/dlcourse/__pycache__/runtime.cpython-311.pyc",
                      "lectures/.ipynb_checkpoints/x.ipynb"):  # setting up and working there is not staleness
        (copy / generated).parent.mkdir(parents=True, exist_ok=True)
        (copy / generated).write_text("")
    assert publish(course, copy, check=True).stale == []
    (copy / "lectures" / "01_cnn_recap.ipynb").write_text("{}")
    (copy / "data" / "cardiac_val.npz").unlink()
    stale = publish(course, copy, check=True).stale
    assert stale == ["missing data/cardiac_val.npz", "outdated lectures/01_cnn_recap.ipynb"]


def test_publish_refuses_folders_it_must_not_overwrite(course, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CourseError, match="holds no edition"):
        publish(course, tmp_path)
    with pytest.raises(CourseError, match="inside the course repository"):
        publish(course, REPO / "edition")


def test_zip_is_reproducible_and_scanned(edition, secrets, tmp_path):
    zipped = edition.with_name("edition.zip").read_bytes()
    names = zipfile.ZipFile(io.BytesIO(zipped)).namelist()
    assert "edition/README.md" in names and all(n.startswith("edition/") for n in names)
    files = {p.relative_to(edition).as_posix(): p.read_bytes() for p in edition.rglob("*") if p.is_file()}
    assert zip_bytes(files, "edition") == zipped
    model = REPO / "solutions" / "lstm" / "lstm_model.keras"
    (tmp_path / "bundle.zip").write_bytes(zip_bytes({"data/model.bin": model.read_bytes()}, "x"))
    assert any("lstm_model.keras" in line for line in scan(tmp_path, secrets))


# ----------------------------------------------------------------- the leak scan


def _solution_line(course) -> str:
    """A distinctive line from inside a ### BEGIN SOLUTION region of a source notebook."""
    source = read_notebook(course.source_notebook("lstm"))
    text = next(c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") ==
                "lstm_cell_forward")
    inside = text.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
    return max(inside.splitlines(), key=len)


def _hidden_test_lines(course, assignment: str) -> list[str]:
    source = read_notebook(course.source_notebook(assignment))
    return [line for c in source.cells if "### BEGIN HIDDEN TESTS" in c.source
            for line in c.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0].splitlines()
            if line.strip() and not line.lstrip().startswith(("from ", "import ", "#"))]


def test_a_planted_solution_line_is_found(course, edition, secrets, tmp_path):
    copy = _copy(edition, tmp_path)
    line = _solution_line(course)
    path = copy / "lectures" / "03_sequences.ipynb"
    nb = read_notebook(path)
    nb.cells[-1].source += "\n    " + line.strip() + "   "  # re-indented: still found
    nbformat.write(nb, path)
    leaks = scan(copy, secrets)
    assert len(leaks) == 1 and leaks[0].startswith("lectures/03_sequences.ipynb:")
    assert "solution lstm/lstm_cell_forward" in leaks[0]


@pytest.mark.parametrize("assignment", ["lstm", "unet"])
def test_a_planted_hidden_test_is_found(course, edition, secrets, tmp_path, assignment):
    copy = _copy(edition, tmp_path)
    line = max(_hidden_test_lines(course, assignment), key=len)
    with open(copy / "src" / "dlcourse" / "figures.py", "a") as handle:
        handle.write("\n# ### BEGIN HIDDEN TESTS is only a comment here\n" + line + "\n")
    leaks = scan(copy, secrets)
    assert len(leaks) == 1 and f"hidden test {assignment}/" in leaks[0], leaks


def test_planted_reference_arrays_models_and_hidden_files_are_found(edition, secrets, tmp_path):
    copy = _copy(edition, tmp_path)
    with np.load(REPO / "solutions" / "lstm" / "hidden_lstm_refs.npz") as refs:
        reference = refs[next(k for k in refs.files if refs[k].size >= 64)]
    with np.load(REPO / "solutions" / "unet" / "hidden_cardiac_test.npz") as split:
        reserved = split["images"]
    np.savez(copy / "data" / "extra_augmentations.npz", weights=reference, more=np.arange(100))
    np.save(copy / "assignments" / "unet" / "examples.npy", reserved)
    shutil.copyfile(REPO / "solutions" / "residual" / "residual_model.keras",
                    copy / "assignments" / "residual" / "pretrained.keras")
    (copy / "data" / "hidden_notes.txt").write_text("nothing")
    (copy / "tests").mkdir()
    (copy / "tests" / "test_x.py").write_text("pass\n")
    (copy / "notes.json").write_text((REPO / "solutions" / "hidden_data_seeds.json").read_text()
                                     .replace("\n", "\n  "))
    leaks = "\n".join(scan(copy, secrets))
    assert "data/extra_augmentations.npz:weights.npy: array equal to solutions/lstm/hidden_lstm_refs.npz:" in leaks
    assert "assignments/unet/examples.npy" in leaks and "hidden_cardiac_test.npz" in leaks
    assert "assignments/residual/pretrained.keras: reference model solutions/residual/residual_model.keras" \
        in leaks
    assert "data/hidden_notes.txt: hidden file" in leaks
    assert "tests/test_x.py: under solutions/ or tests/" in leaks
    assert "notes.json:" in leaks and "hidden file solutions/hidden_data_seeds.json" in leaks


def test_check_command_fails_on_a_leak(edition, tmp_path):
    copy = _copy(edition, tmp_path)
    shutil.copyfile(REPO / "solutions" / "lstm" / "hidden_signal_test.npz", copy / "data" / "signals_test.npz")
    proc = subprocess.run([str(BIN / "course"), "publish", str(copy), "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "LEAK data/signals_test.npz: copy of solutions/lstm/hidden_signal_test.npz" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("course: error: the edition at")
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------- Colab


def test_publish_fills_in_the_colab_location_of_plain_cells_only(tmp_path):
    nb = notebook([cell("code", colab.SETUP_CELL.format(location="")), cell("code", "x = 1")])
    nbformat.write(nb, tmp_path / "a.ipynb")
    filled = nbformat.reads(_with_location(tmp_path / "a.ipynb", "https://example.org/e.zip").decode(), 4)
    assert 'COURSE_EDITION = "https://example.org/e.zip"' in filled.cells[0].source
    nb.cells[0] = cell("code", nb.cells[0].source, "colab", locked=True)
    nbformat.write(nb, tmp_path / "a.ipynb")
    with pytest.raises(CourseError, match="Colab setup cell is an nbgrader cell"):
        _with_location(tmp_path / "a.ipynb", "x")


def test_colab_data_comes_from_a_folder_or_a_zip(edition, tmp_path, monkeypatch):
    monkeypatch.setattr(colab, "CACHE", tmp_path / "cache")
    assert colab.edition_data(str(edition)) == edition / "data"
    from_zip = colab.edition_data(str(edition.with_name("edition.zip")))
    assert (from_zip / "cardiac_train.npz").read_bytes() == (edition / "data" / "cardiac_train.npz").read_bytes()
    for bad, message in (("", "no course edition location"), (str(tmp_path / "nope"), "not found"),
                         (str(edition / "README.md"), "not a zip")):
        with pytest.raises(CourseError, match=message):
            colab.edition_data(bad)


# ----------------------------------------------------------------- the edition on its own


def _fresh_env(folder: Path) -> Path:
    """A new virtual environment that sees the installed packages but not this repository's dlcourse.

    The path line in a .pth file adds the course environment's site-packages
    without running its own .pth files, so the repository's editable install
    stays invisible and nothing needs downloading.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = next((folder / "lib").glob("python3*/site-packages"))
    (site / "course_env.pth").write_text(str(next((BIN.parent / "lib").glob("python3*/site-packages"))) + "\n")
    for shared in ("etc/jupyter", "share/jupyter"):  # what pip puts there: server extensions, lab assets
        (folder / shared).parent.mkdir(parents=True, exist_ok=True)
        (folder / shared).symlink_to(BIN.parent / shared, target_is_directory=True)
    return folder / "bin" / "python"


OFFLINE = {"PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.mark.slow
def test_colab_setup_cell_installs_package_and_data_from_a_folder(edition, tmp_path):
    python = _fresh_env(tmp_path / "runtime")
    script = colab.SETUP_CELL.format(location=edition) + (
        "\nimport dlcourse, os\nfrom dlcourse.data import load_signals\n"
        "print(dlcourse.__file__)\nprint(os.environ['DLCOURSE_DATA'])\nprint(load_signals('val')[0].shape)\n")
    env = {**os.environ, **OFFLINE}
    env.pop("DLCOURSE_DATA", None)
    unset = subprocess.run([str(python), "-c", colab.SETUP_CELL.format(location="")], cwd=tmp_path,
                           capture_output=True, text=True, env=env, timeout=300)
    assert unset.returncode == 1 and "COURSE_EDITION is empty" in unset.stderr
    proc = subprocess.run([str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    package, data, shape = proc.stdout.strip().splitlines()[-3:]
    assert package.startswith(str(tmp_path / "runtime")) and data == str(edition / "data")
    assert shape.startswith("(") and shape.endswith(", 200, 1)")


def _validate_in_edition(course, edition, course_cmd, assignment, env, tmp_path) -> list[str]:
    """The untouched release fails, naming its cells; with the solution pasted in and the
    reference model handed in, every visible test passes. Returns the untouched release's FAIL names."""
    proc = subprocess.run([str(course_cmd), "validate", f"assignments/{assignment}/{assignment}.ipynb"],
                          cwd=edition, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL    test_" in proc.stdout and "hidden  " in proc.stdout and proc.stderr == ""
    # what the Validate dialog lists too: failing test cells and answers, and cells that raised
    failing = [line[10:].split(": ")[0] for line in proc.stdout.splitlines()
               if line.startswith(("  FAIL ", "  ERROR "))]
    solved = tmp_path / "student" / assignment
    solved.mkdir(parents=True)
    release = read_notebook(edition / "assignments" / assignment / f"{assignment}.ipynb")
    nbformat.write(fill_solutions(release, read_notebook(course.source_notebook(assignment))),
                   solved / f"{assignment}.ipynb")
    model = f"{assignment}_model.keras"
    shutil.copyfile(REPO / "solutions" / assignment / model, solved / model)
    proc = subprocess.run([str(course_cmd), "validate", str(solved / f"{assignment}.ipynb")], cwd=edition,
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{assignment}.ipynb: all visible tests pass." in proc.stdout
    assert f"hand-in {model}: loads in safe mode" in proc.stdout
    return failing


@pytest.mark.slow
def test_edition_sets_up_and_validates_on_its_own(course, edition, tmp_path):
    """From the published tree: `make setup` (offline), `course validate` there, `make lab` serves."""
    copy = _copy(edition, tmp_path)
    _fresh_env(copy / ".venv")
    env = {**os.environ, **OFFLINE}
    for key in ("DLCOURSE_DATA", "DLCOURSE_ROOT", "NBGRADER_EXECUTION"):
        env.pop(key, None)
    setup = subprocess.run(["make", "setup", f"PYTHON={sys.executable}"], cwd=copy, capture_output=True,
                           text=True, env=env, timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    course_cmd = copy / ".venv" / "bin" / "course"
    where = subprocess.run([str(copy / ".venv" / "bin" / "python"), "-c",
                            "import dlcourse, importlib.util as u; print(dlcourse.__file__, "
                            "u.find_spec('dlcourse.authoring'), u.find_spec('dlcourse.runner'))"], capture_output=True, text=True, env=env)
    assert where.stdout.split() == [str(copy / "src" / "dlcourse" / "__init__.py"), "None", "None"]

    assignments = course.assignment_ids() if os.environ.get("DLCOURSE_EDITION_ALL") else ["lstm"]
    failing = {}
    for assignment in assignments:  # set DLCOURSE_EDITION_ALL=1 for all four (minutes each)
        failing[assignment] = _validate_in_edition(course, copy, course_cmd, assignment, env, tmp_path)

    import socket

    with socket.socket() as probe:  # a free port, chosen here so that the URL is known
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    lab = subprocess.Popen(["make", "lab", f"LAB_ARGS=--no-browser --allow-root --port={free} "
                            "--ServerApp.port_retries=0 --ServerApp.token=t --ip=127.0.0.1"],
                           cwd=copy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           start_new_session=True)
    try:
        deadline, seen = time.monotonic() + 120, ""
        while time.monotonic() < deadline and "http://127.0.0.1:" not in seen:
            if select.select([lab.stdout], [], [], 1)[0]:
                seen += lab.stdout.readline()
        assert f"http://127.0.0.1:{free}/" in seen, seen[-2000:]
        for _ in range(60):  # the server logs its URL a moment before it accepts connections
            try:
                urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{free}/api/status",
                                                              headers={"Authorization": "token t"}), timeout=10)
                break
            except OSError:
                time.sleep(0.5)
        # The notebook's Validate button: the request JupyterLab sends, answered by nbgrader's
        # validator with the edition's nbgrader_config.py. It names the same cells as course validate.
        request = urllib.request.Request(
            f"http://127.0.0.1:{free}/assignments/validate", headers={"Authorization": "token t"},
            data=urllib.parse.urlencode({"path": "assignments/lstm/lstm.ipynb"}).encode())
        with urllib.request.urlopen(request, timeout=600) as response:
            result = json.load(response)
        assert result["success"], result
        named = [re.fullmatch(r"(.+?)(?: \(cell \d+\)|: not a test cell, but it raised \(the grader runs it too\))",
                              f["source"]) for f in result["value"]["failed"]]
        assert all(named), result["value"]["failed"]
        assert [m.group(1) for m in named] == failing["lstm"]
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=60)


def test_edition_nbgrader_config_wires_the_validate_button(edition):
    from nbgrader.apps import NbGrader

    from dlcourse.validate import name_cells_for_validate_button, report_cells_for_validate_button

    app = NbGrader()
    app.config_file_paths.append([str(edition)])
    app.load_config_file()
    assert app.config.Execute.on_notebook_start is name_cells_for_validate_button
    assert app.config.Execute.on_cell_complete is name_cells_for_validate_button
    assert app.config.Execute.on_cell_start is report_cells_for_validate_button
    assert app.config.Execute.on_cell_error is report_cells_for_validate_button
    assert app.config.Validator.validate_all is True
    from dlcourse import lab_exchange

    assert app.config.ExchangeFactory.list is lab_exchange.PersonalExchangeList  # no exchange errors


@pytest.mark.parametrize("line, trivial", [
    ("import numpy as np", True), ("for t in range(steps):", True), ("inputs = keras.Input(x_train.shape[1:])", True),
    ("HANDIN.check()", False), ("SIGMOID.check(sigmoid)", False), ("h_t = sigmoid(z_o) * np.tanh(c_t)", False),
])
def test_which_lines_are_too_common_to_count(line, trivial):
    from dlcourse.authoring.publish import is_trivial

    assert is_trivial(line) is trivial


def test_relative_links_of_the_edition_notebooks_resolve(edition):
    for nb in list((edition / "lectures").glob("*.ipynb")) + list((edition / "assignments").glob("*/*.ipynb")):
        for target in re.findall(r"\]\((\.{1,2}/[^)#\s]+)\)", nb.read_text()):
            assert (nb.parent / target).exists(), f"{nb.name} links to {target}, absent from the edition"


def test_publish_fails_and_writes_no_zip_when_the_edition_leaks(course, tmp_path, monkeypatch):
    import dlcourse.authoring.publish as publish_module

    real = publish_module.edition_files

    def leaking(c):
        files = real(c)
        files["data/extra.npz"] = (REPO / "solutions" / "unet" / "hidden_cardiac_test.npz").read_bytes()
        return files

    monkeypatch.setattr(publish_module, "edition_files", leaking)
    report = publish(course, tmp_path / "edition", make_zip=True)
    assert report.leaks == ["data/extra.npz: copy of solutions/unet/hidden_cardiac_test.npz"]
    assert report.zip_path is None and not (tmp_path / "edition.zip").exists()
