"""The lecture notebooks follow the slides and are stored ready to read.

Slide titles come from the slide text, where every slide starts with a line
``# Title`` (``## `` lines are headings inside a slide). The slide file lives
beside the repository (``../shared/slides``) and is not part of a clone, so the
titles it yields are also committed in ``lectures/slide_titles.txt``; the test
that re-parses the slides runs wherever the file is present.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path

import pytest

from dlcourse.runner.course import Course

ROOT = Path(__file__).resolve().parents[1]
LECTURES = ROOT / "lectures"
TITLES_FILE = LECTURES / "slide_titles.txt"
SLIDES_ENV = "DLCOURSE_SLIDES"
SLIDES_DEFAULT = ROOT.parent / "shared" / "slides" / "000_f8e7ce6597d80bf8.txt"

#: Slides without a title line, recognised by a phrase of their body: the
#: heading each gets in the notebooks.
UNTITLED_SLIDES = {
    "outperformed 'conventional' methods in 2012": "AlexNet",
    "16 weight layers": "VGG",
}
#: Sub-headings that mark the speaker and agenda slide, which is no section.
NOT_A_SECTION = ("## Me", "## Today")
#: The practicals, as the course finds them (solutions/<id>/<id>.ipynb).
ASSIGNMENTS = tuple(Course(ROOT).assignment_ids())


def slide_titles(text: str) -> list[str]:
    """Section titles of the lecture, in slide order.

    The title page (first slide) and the speaker/agenda slide are dropped, a
    title repeated on consecutive slides counts once, and untitled slides get
    the name from ``UNTITLED_SLIDES``.
    """
    slides: list[tuple[str, str]] = []
    for line in text.splitlines():
        match = re.match(r"^#\s+(\S.*?)\s*$", line)
        if match:
            slides.append((match.group(1), ""))
        elif slides:
            title, body = slides[-1]
            slides[-1] = (title, body + line + "\n")
    titles: list[str] = []
    for title, body in slides[1:]:
        if any(re.search(rf"^{re.escape(h)}\s*$", body, re.M) for h in NOT_A_SECTION):
            continue
        if not titles or titles[-1] != title:
            titles.append(title)
        for phrase, name in UNTITLED_SLIDES.items():
            if phrase in body:
                titles.append(name)
    return titles


def normalise(text: str) -> str:
    """Lower case words only: quotes, dashes and punctuation do not matter."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.findall(r"[0-9a-z]+", text))


def notebooks() -> list[Path]:
    return sorted(LECTURES.glob("[0-9][0-9]_*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def headings(path: Path) -> list[str]:
    out = []
    for cell in load(path)["cells"]:
        if cell["cell_type"] == "markdown":
            out += re.findall(r"^#{1,6}\s+(.+?)\s*$", "".join(cell["source"]), re.M)
    return out


def source(cell: dict) -> str:
    return "".join(cell["source"])


def committed_titles() -> list[str]:
    return [t for t in TITLES_FILE.read_text(encoding="utf-8").splitlines() if t.strip()]


# --------------------------------------------------------------------------
# Titles
# --------------------------------------------------------------------------


def test_parser_on_a_small_example() -> None:
    text = (
        "\n# Course title\n\nname\n\n# Course\n\n## Me\n\n- me\n\n## Today\n\n1. this\n\n"
        "# Intro\n\ntext\n\n# Data: ImageNet\n\nx\n\n- Substantially outperformed "
        "'conventional' methods in 2012\n\n# Kernel size\n\n## Sub\n\n# Kernel size\n\n"
        "# Next\n\n# Kernel size\n"
    )
    assert slide_titles(text) == [
        "Intro", "Data: ImageNet", "AlexNet", "Kernel size", "Next", "Kernel size",
    ]


@pytest.mark.skipif(
    not Path(os.environ.get(SLIDES_ENV, SLIDES_DEFAULT)).is_file(),
    reason="slide text not present (it lives beside the repository, not in it)",
)
def test_committed_titles_are_the_slides() -> None:
    path = Path(os.environ.get(SLIDES_ENV, SLIDES_DEFAULT))
    assert slide_titles(path.read_text(encoding="utf-8")) == committed_titles()


def test_notebooks_exist() -> None:
    names = [p.name for p in notebooks()]
    assert len(names) >= 5, names


def test_every_slide_title_is_a_heading_in_order() -> None:
    found = [(p.name, h) for p in notebooks() for h in headings(p)]
    position = -1
    for title in committed_titles():
        want = normalise(title)
        for i in range(position + 1, len(found)):
            if f" {want} " in f" {normalise(found[i][1])} ":
                position = i
                break
        else:
            after = found[position] if position >= 0 else ("start", "")
            pytest.fail(f"slide title {title!r} is not a heading after {after}")


# --------------------------------------------------------------------------
# Notebook hygiene
# --------------------------------------------------------------------------


def _lecture_code(path: Path) -> list[dict]:
    """The lecture's own code cells: the Colab setup cell on top only installs the course."""
    from dlcourse.colab import LOCATION_PREFIX

    cells = [c for c in load(path)["cells"] if c["cell_type"] == "code"]
    assert cells and LOCATION_PREFIX in source(cells[0]), "the first cell is the Colab setup cell"
    return cells[1:]


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_first_code_cell_sets_up_the_runtime(path: Path) -> None:
    code = [source(c) for c in _lecture_code(path)]
    first = code[0]
    assert "runtime.setup(" in first
    setup_at = first.index("runtime.setup(")
    for lib in ("import tensorflow", "import keras", "from keras"):
        assert lib not in first[:setup_at], f"{lib} before runtime.setup()"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_outputs_are_stored_without_errors(path: Path) -> None:
    cells = _lecture_code(path)
    counts = [c["execution_count"] for c in cells]
    assert None not in counts, "notebook not executed: run lectures/execute.py"
    start = counts[0] if counts and counts[0] in (1, 2) else 1  # 2 when the Colab cell ran first
    assert counts == list(range(start, start + len(cells))), "cells not run top to bottom in one go"
    for cell in cells:
        for out in cell["outputs"]:
            assert out["output_type"] != "error", source(cell)[:80]
            if out.get("name") == "stderr":
                assert "NBVAL_CHECK_OUTPUT" not in source(cell), "checked cell writes to stderr"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_numbers_are_checked_by_nbval(path: Path) -> None:
    checked = [c for c in load(path)["cells"]
               if c["cell_type"] == "code" and "# NBVAL_CHECK_OUTPUT" in source(c)]
    assert checked, "no cell marked # NBVAL_CHECK_OUTPUT"
    for cell in checked:
        assert cell["outputs"], "a checked cell needs a stored output"
        assert "verbose=0" in source(cell) or ".fit(" not in source(cell)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_links_to_assignments_and_references(path: Path) -> None:
    text = "\n".join(source(c) for c in load(path)["cells"] if c["cell_type"] == "markdown")
    links = re.findall(r"\]\((\.\./assignments/[^)]+)\)", text)
    assert links, "each lecture ends with a link to its assignment"
    for link in links:
        match = re.fullmatch(r"\.\./assignments/(\w+)/(\w+)\.ipynb", link)
        assert match and match.group(1) == match.group(2) and match.group(1) in ASSIGNMENTS
    assert re.search(r"^#+ References", text, re.M), "a References section"


def test_each_assignment_is_linked() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in notebooks())
    for name in ASSIGNMENTS:
        assert f"../assignments/{name}/{name}.ipynb" in text


# --------------------------------------------------------------------------
# Exercises and data provenance
# --------------------------------------------------------------------------


def _is_hidden(cell: dict) -> bool:
    meta = cell.get("metadata", {}).get("jupyter", {})
    return bool(meta.get("source_hidden") or meta.get("outputs_hidden"))


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_exercises_have_collapsed_answers(path: Path) -> None:
    cells = load(path)["cells"]
    exercises = [i for i, c in enumerate(cells)
                 if c["cell_type"] == "markdown" and source(c).startswith("**Exercise.**")]
    assert len(exercises) >= 3, "each lecture has exercises"
    for i in exercises:
        answer = cells[i + 1]
        assert source(answer).startswith("**Answer.**"), source(cells[i])[:60]
        assert _is_hidden(answer), "answers are collapsed (jupyter.source_hidden)"
    answers = [c for c in cells if source(c).startswith("**Answer.**")]
    assert len(answers) == len(exercises)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_no_placeholder_left(path: Path) -> None:
    text = "\n".join(source(c) for c in load(path)["cells"])
    assert "PLACEHOLDER" not in text


@pytest.mark.parametrize("path", [p for p in notebooks() if not p.name.startswith("05")],
                         ids=lambda p: p.name)
def test_synthetic_data_is_named_where_it_first_appears(path: Path) -> None:
    """The first markdown cell that introduces a bundled data set calls it synthetic and links
    data/README.md."""
    cells = load(path)["cells"]
    text = "\n".join(source(c) for c in cells if c["cell_type"] == "markdown")
    first_load = next(i for i, c in enumerate(cells)
                      if c["cell_type"] == "code" and re.search(r"data\.load_\w+\(", source(c)))
    before = "\n".join(source(c) for c in cells[:first_load] if c["cell_type"] == "markdown")
    if "load_ct_slices" in source(cells[first_load]) or "load_cardiac" in source(cells[first_load]):
        assert "synthetic" in before.lower(), "name the generated data before loading it"
    assert "../data/README.md" in text
