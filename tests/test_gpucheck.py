"""`course gpu-check` on a CPU-only machine: it runs, finds no accelerator, agrees with itself."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_reports_deviation_and_verdicts():
    proc = subprocess.run([str(Path(sys.executable).parent / "course"), "gpu-check", "inception"],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("inception: device none (CPU only)")
    deviation = float(line.split("CPU references ")[1].split()[0])
    assert deviation < 1e-5
    assert line.endswith("every verdict equals the CPU's: yes")
