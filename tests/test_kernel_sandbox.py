"""Plain `nbgrader autograde` (and so formgrader) runs the student's kernel confined.

The student's notebook tries to read a file of the TA's outside the course, the
course's gradebook, and a port listening on the machine's loopback. Confined,
all three fail while the graded test still scores; with the confinement
switched off on purpose the same notebook reads them, which shows the check
can see a leak.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbfactory import tiny_course, tiny_submission
from nbformat.v4 import new_code_cell

from dlcourse.runner import kernel_sandbox, sandbox

BIN = Path(sys.executable).parent


def require_bubblewrap() -> None:
    """Skip without working bubblewrap; in CI (``CI`` set) fail instead."""
    found = sandbox.detect()
    if found.kind != "bubblewrap":
        message = f"kernel confinement needs working bubblewrap: {found.warning}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


PROBE = """\
import os, pathlib, socket
try:
    print("SECRET:", pathlib.Path({secret!r}).read_text())
except OSError as error:
    print("secret unreadable:", type(error).__name__)
print("gradebook visible:", os.path.exists({gradebook!r}))
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    print("NETWORK: connected")
except OSError as error:
    print("network unreachable:", type(error).__name__)
"""


@pytest.fixture
def listener():
    """A port that accepts connections on the host's loopback."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def _autograde_with_probe(tmp_path: Path, port: int, extra_env: dict[str, str]) -> tuple[str, float]:
    """`nbgrader autograde tiny` on a submission with the probe cell; its output and the score."""
    from nbgrader.api import Gradebook

    course = tiny_course(tmp_path / "course")
    ta_home = tmp_path / "ta-home"
    ta_home.mkdir()
    secret = ta_home / "secret.txt"
    token = secrets.token_hex(8)
    secret.write_text(f"ta-secret-{token}")
    submission = tiny_submission(course)
    probe = new_code_cell(PROBE.format(secret=str(secret), gradebook=str(course.root / "gradebook.db"),
                                       port=port))
    probe.id = "probe"
    submission.cells.insert(1, probe)
    folder = course.submitted / "mallory" / "tiny"
    folder.mkdir(parents=True)
    nbformat.write(submission, folder / "tiny.ipynb")

    env = {**os.environ, "HOME": str(ta_home), **extra_env}
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    if sandbox.UNCONFINED_VARIABLE not in extra_env:
        env.pop(sandbox.UNCONFINED_VARIABLE, None)
    for args in (["generate_assignment", "tiny", "--force"], ["autograde", "tiny", "--create"]):
        result = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course.root, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    graded = nbformat.read(course.autograded / "mallory" / "tiny" / "tiny.ipynb", as_version=4)
    cell = next(c for c in graded.cells if c.get("id") == "probe")
    output = "".join(o.get("text", "") for o in cell.outputs)
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        score = gb.find_submission("tiny", "mallory").code_score
    return output, score


@pytest.mark.slow
def test_plain_nbgrader_autograde_cannot_read_the_tas_files_or_reach_the_network(tmp_path, listener):
    require_bubblewrap()
    output, score = _autograde_with_probe(tmp_path, listener, {})
    assert "secret unreadable: FileNotFoundError" in output, output
    assert "ta-secret" not in output
    assert "gradebook visible: False" in output, output
    assert "network unreachable" in output, output
    assert score == 2  # confined, the honest test still passes


@pytest.mark.slow
def test_the_probe_sees_a_leak_when_confinement_is_switched_off(tmp_path, listener):
    output, score = _autograde_with_probe(tmp_path, listener, {sandbox.UNCONFINED_VARIABLE: "1"})
    assert "SECRET: ta-secret-" in output, output
    assert "gradebook visible: True" in output, output
    assert "NETWORK: connected" in output, output
    assert score == 2


def test_the_course_configuration_confines_autograde_only(repo_course):
    """Autograde's Execute step is the confined one; nbgrader's validator keeps its own."""
    from nbgrader.preprocessors import Execute

    from dlcourse.runner import nbgrader_api

    steps = nbgrader_api.load_config(repo_course).Autograde.autograde_preprocessors
    assert kernel_sandbox.ConfinedExecute in steps and Execute not in steps
    with pytest.raises(ValueError, match="no nbgrader Execute step"):
        kernel_sandbox.confine_autograde([s for s in steps if s is not kernel_sandbox.ConfinedExecute])


def test_an_unconfined_run_asked_for_by_the_ta_is_not_wrapped(monkeypatch):
    monkeypatch.setenv(sandbox.UNCONFINED_VARIABLE, "1")
    manager = kernel_sandbox.ConfinedKernelManager(kernel_name="python3")
    assert not manager.confined and manager.transport == "tcp"


async def _run(client, code: str, timeout: float = 60) -> str:
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    await client.execute_interactive(code, output_hook=hook, timeout=timeout)
    return "".join(out)


def test_a_confined_kernel_can_be_interrupted_and_is_killed_past_its_memory(tmp_path):
    require_bubblewrap()

    async def scenario() -> None:
        (tmp_path / "handed_in.txt").write_text("mine")
        (tmp_path / "linked.txt").symlink_to("/etc/hostname")
        manager = kernel_sandbox.ConfinedKernelManager(kernel_name="python3", memory_gb=0.3, timeout=None)
        assert manager.confined and manager.transport == "ipc"
        await manager.start_kernel(cwd=str(tmp_path))
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            # Its own working folder: a copy of the regular files beside the notebook, no link.
            assert (await _run(client, "import os; print(os.getcwd(), sorted(os.listdir()))")).strip() == \
                f"{kernel_sandbox.WORK} ['handed_in.txt']"
            status = await _run(client, "print(open('/proc/self/status').read())")
            assert "CapEff:\t0000000000000000" in status  # no capabilities, even when graded as root
            assert "NoNewPrivs:\t1" in status
            who = await _run(client, "import os; print(os.getuid())\ntry:\n    open('/etc/shadow').read()\n"
                                     "    print('SHADOW READ')\nexcept OSError as e:\n    print(type(e).__name__)")
            assert who.split() == ["65534", "PermissionError"], who
            # The sandbox's standard streams are not those of the process that runs nbgrader
            # (its stdout is how a warm worker replies to its parent): /dev/null and a log file.
            root = manager.provisioner.pid
            streams = [os.readlink(f"/proc/{root}/fd/{fd}") for fd in (0, 1, 2)]
            assert streams[0] == "/dev/null" and streams[1] == streams[2] and streams[1].endswith("kernel.log")
            sleeper = asyncio.ensure_future(_run(client, "import time; time.sleep(60)"))
            await asyncio.sleep(1.5)
            started = time.monotonic()
            await manager.interrupt_kernel()
            assert "KeyboardInterrupt" in await asyncio.wait_for(sleeper, 20)
            assert time.monotonic() - started < 10
            hog = asyncio.ensure_future(_run(client, "x = bytearray(1 << 30); x[::4096] = b'1' * (1 << 18)\n"
                                                     "import time; time.sleep(60)", timeout=90))
            deadline = time.monotonic() + 60
            while await manager.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert not await manager.is_alive()
            assert "memory limit" in manager.limit_hit
            hog.cancel()
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(now=True)
            await manager.cleanup_resources()

    asyncio.run(asyncio.wait_for(scenario(), 180))


def test_a_confined_kernel_is_stopped_at_its_time_limit(tmp_path):
    require_bubblewrap()

    async def scenario() -> None:
        manager = kernel_sandbox.ConfinedKernelManager(kernel_name="python3", timeout=8)
        await manager.start_kernel(cwd=str(tmp_path))
        try:
            deadline = time.monotonic() + 60
            while await manager.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert not await manager.is_alive()
            assert manager.limit_hit == "time limit of 8 s exceeded"
        finally:
            await manager.shutdown_kernel(now=True)
            await manager.cleanup_resources()

    asyncio.run(asyncio.wait_for(scenario(), 120))
