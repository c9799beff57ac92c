"""Stored notebook outputs do not reveal the machine that produced them.

Lecture notebooks (``lectures/*.ipynb``) are stored with their outputs, and
released notebooks (``assignments/*/*.ipynb``) go to students as they are. An
output such as ``PosixPath('/work/main/data')`` or a traceback through
``/home/someone/...`` would publish a path of the machine that ran the notebook
and, often, its user name. These tests read the notebooks as JSON (nothing is
executed) and fail on any such output.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: An absolute path on a typical build machine or laptop: POSIX roots that hold home,
#: work and temporary folders (not preceded by a character that would make it part of a
#: relative path or a URL), and Windows drive letters.
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~/-])/(?:work|home|root|tmp|Users|private|var/folders|mnt)(?:/|\b)"
    r"|file:///"
    r"|(?<![\w])[A-Za-z]:\\"
)
#: Output data that is text; images and other binary payloads are base64 and skipped.
TEXT_MIME = re.compile(r"^(text/.*|application/(json|javascript|.*\+json)|image/svg\+xml)$")


def notebooks() -> list[Path]:
    return sorted(ROOT.glob("lectures/*.ipynb")) + sorted(ROOT.glob("assignments/*/*.ipynb"))


def user_name() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return os.environ.get("USER") or os.environ.get("USERNAME")


def machine_strings() -> list[str]:
    """Literal strings that name this machine's folders or user (long enough to be specific)."""
    folders = [str(ROOT), str(Path.home()), tempfile.gettempdir()]
    found = [f for f in folders if len(f.strip("/\\")) >= 3]
    user = user_name()
    if user and len(user) >= 3:
        # the user name as a path component, in a prompt or e-mail-like form, or as ~user
        found += [f"/{user}/", f"\\{user}\\", f"{user}@", f"~{user}"]
    return list(dict.fromkeys(found))


def _machine_pattern(strings: list[str]) -> re.Pattern[str] | None:
    """The strings as one pattern; a folder must not run on into a longer name."""
    if not strings:
        return None
    return re.compile("|".join(re.escape(s) + (r"(?![\w.-])" if s[-1].isalnum() else "")
                               for s in strings))


def output_texts(output: dict) -> Iterator[str]:
    """Every piece of text a stored output holds (stream text, text data, tracebacks, metadata)."""
    if "text" in output:
        text = output["text"]
        yield "".join(text) if isinstance(text, list) else text
    for mime, value in output.get("data", {}).items():
        if TEXT_MIME.match(mime):
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                yield "".join(value)
            else:
                yield value if isinstance(value, str) else json.dumps(value)
    for key in ("ename", "evalue"):
        if key in output:
            yield str(output[key])
    yield from output.get("traceback", [])
    if output.get("metadata"):
        yield json.dumps(output["metadata"])


def leaks(notebook: dict, strings: list[str]) -> list[str]:
    """One line per output text that holds an absolute path or a machine string."""
    found = []
    machine = _machine_pattern(strings)
    for index, cell in enumerate(notebook.get("cells", [])):
        for output in cell.get("outputs", []):
            for text in output_texts(output):
                hits = [m.group(0) for m in ABSOLUTE_PATH.finditer(text)]
                if machine is not None:
                    hits += [m.group(0) for m in machine.finditer(text)]
                if hits:
                    start = min(text.find(h) for h in hits)
                    excerpt = text[max(0, start - 40):start + 60].replace("\n", " ")
                    found.append(f"cell {index}: {sorted(set(hits))} in ...{excerpt}...")
    return found


def test_there_are_notebooks_to_check() -> None:
    names = [p.relative_to(ROOT).parts[0] for p in notebooks()]
    assert "lectures" in names and "assignments" in names


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_stored_outputs_hold_no_machine_path(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    found = leaks(notebook, machine_strings())
    assert not found, (
        f"{path.relative_to(ROOT)} stores outputs that name the machine that ran it:\n"
        + "\n".join(found)
        + "\nprint a relative or symbolic path instead, or clear that output"
    )


def _notebook_with(*outputs: dict) -> dict:
    return {"cells": [{"cell_type": "code", "source": "", "outputs": list(outputs)}]}


@pytest.mark.parametrize("output", [
    {"output_type": "execute_result", "data": {"text/plain": ["PosixPath('/work/main/data')"]}},
    {"output_type": "stream", "name": "stderr",
     "text": "/home/alice/course/.venv/lib/python3.11/site-packages/keras/x.py:1: UserWarning\n"},
    {"output_type": "stream", "name": "stdout", "text": "saved to /tmp/tmpab12/model.keras\n"},
    {"output_type": "stream", "name": "stdout", "text": "/root\n"},
    {"output_type": "display_data", "data": {"text/html": ["<a href='file:///Users/bob/x'>x</a>"]}},
    {"output_type": "error", "ename": "FileNotFoundError", "evalue": "x",
     "traceback": ["File C:\\Users\\carol\\course\\nb.py, line 3"]},
    {"output_type": "stream", "name": "stdout", "text": "data in /private/var/folders/x\n"},
])
def test_detector_finds_planted_paths(output: dict) -> None:
    assert leaks(_notebook_with(output), []), output


def test_detector_finds_this_machines_folders_and_user() -> None:
    strings = machine_strings()
    assert str(ROOT) in strings
    planted = {"output_type": "stream", "name": "stdout", "text": f"data: {ROOT / 'data'}\n"}
    assert leaks(_notebook_with(planted), strings)
    user = user_name()
    if user and len(user) >= 3:
        planted = {"output_type": "stream", "name": "stdout", "text": f"{user}@host:~$\n"}
        assert leaks(_notebook_with(planted), strings)


@pytest.mark.parametrize("text", [
    "see ../data/README.md and data/cardiac_train.npz",
    "https://medmnist.com/ and https://example.org/home/page",
    "Rescaling(1 / 255), 50 beats/min, input/output, km/h",
    "PosixPath('data')",
    "ratio 3D / 2D: 25.7x",
])
def test_detector_leaves_ordinary_text_alone(text: str) -> None:
    output = {"output_type": "stream", "name": "stdout", "text": text}
    assert not leaks(_notebook_with(output), []), text


def test_lecture_execution_drops_the_setup_cells_output() -> None:
    """lectures/execute.py clears what the Colab setup cell returns (this machine's data folder)."""
    import importlib.util

    import nbformat

    from dlcourse.colab import SETUP_CELL

    spec = importlib.util.spec_from_file_location("lecture_execute", ROOT / "lectures" / "execute.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    setup = nbformat.v4.new_code_cell(SETUP_CELL.format(location=""))
    setup.outputs = [nbformat.v4.new_output(
        "execute_result", data={"text/plain": f"PosixPath('{ROOT / 'data'}')"}, execution_count=1)]
    lecture = nbformat.v4.new_code_cell("print(1)")
    lecture.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    notebook = nbformat.v4.new_notebook(cells=[setup, lecture])
    module.drop_setup_output(notebook)
    assert notebook.cells[0].outputs == [] and notebook.cells[1].outputs == lecture.outputs
    assert not leaks(json.loads(nbformat.writes(notebook)), machine_strings())
