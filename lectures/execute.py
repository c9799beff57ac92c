"""Run lecture notebooks top to bottom and store their outputs in place.

Run this after editing a lecture, then commit the notebook:

    .venv/bin/python lectures/execute.py                  # every lecture
    .venv/bin/python lectures/execute.py 02_advanced_architectures.ipynb

Stored outputs are what nbval compares against (cells marked
``# NBVAL_CHECK_OUTPUT``). TensorFlow's C++ start-up lines, which it prints
before any Python setting can silence them, are dropped from the stored
outputs, and so is the output of the Colab setup cell on top, which only names the data
folder of the machine that ran the notebook; everything else is kept as the kernel wrote it.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
#: Lines TensorFlow's C++ runtime writes while it loads (absl and TF logging).
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*"
    r"|To enable the following instructions: .*in other operations, rebuild TensorFlow.*)$"
)


def strip_startup_noise(nb: nbformat.NotebookNode) -> None:
    """Remove TensorFlow start-up lines from stderr outputs (and empty streams)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            if out.output_type == "stream" and out.name == "stderr":
                lines = [ln for ln in out.text.splitlines(keepends=True)
                         if not NOISE.match(ln.rstrip("\n"))]
                out.text = "".join(lines)
                if not out.text:
                    continue
            kept.append(out)
        cell.outputs = kept


def drop_setup_output(nb: nbformat.NotebookNode) -> None:
    """Clear the outputs of the Colab setup cell (an absolute path of this machine)."""
    from dlcourse.colab import LOCATION_PREFIX

    for cell in nb.cells:
        if cell.cell_type == "code" and LOCATION_PREFIX in cell.source:
            cell.outputs = []


def execute(path: Path, timeout: int = 600, save: bool = True) -> float:
    """Execute one notebook in its own folder; return the wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    if save:
        strip_startup_noise(nb)
        drop_setup_output(nb)
        nbformat.write(nb, path)
    return seconds


def lecture_paths(names: list[str]) -> list[Path]:
    """The named notebooks (relative to lectures/ or the cwd), or all of them."""
    if not names:
        return sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    return [Path(n) if Path(n).exists() else HERE / n for n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="default: every lecture notebook")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    for path in lecture_paths(args.notebooks):
        seconds = execute(path, timeout=args.timeout)
        print(f"{path.name:40s} {seconds:6.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
