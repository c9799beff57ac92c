"""GPUs in the sandbox, checked without one: which device nodes are bound, and what --device means."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlcourse.errors import CourseError
from dlcourse.runner import sandbox
from dlcourse.runner.course import Course


def _fake_dev(tmp_path: Path, names: tuple[str, ...]) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in names:
        (dev / name).touch()
    return dev


GPU_NODES = ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")


def test_every_node_the_cuda_runtime_opens_is_found(tmp_path):
    dev = _fake_dev(tmp_path, (*GPU_NODES, "nvidia-caps", "null", "dri"))
    assert [p.name for p in sandbox.gpu_device_nodes(dev)] == sorted(GPU_NODES)


def test_gpu_nodes_are_bound_after_the_minimal_dev(tmp_path, monkeypatch):
    nodes = sandbox.gpu_device_nodes(_fake_dev(tmp_path, GPU_NODES))
    monkeypatch.setattr(sandbox, "gpu_device_nodes", lambda dev=Path("/dev"): nodes)
    args = sandbox.bwrap_args(sandbox.Layout(device="gpu"))
    dev_at = args.index("--dev")
    binds = [args[i + 1] for i, a in enumerate(args) if a == "--dev-bind"]
    assert binds == [str(n) for n in nodes]
    assert all(args.index(str(n)) > dev_at for n in nodes), "a bind before --dev would be hidden by it"
    cpu = sandbox.bwrap_args(sandbox.Layout(device="cpu"))
    assert "--dev-bind" not in cpu, "no device nodes on the CPU"
    assert [a for a in args if a != "--dev-bind" and a not in map(str, nodes)] == cpu, "the GPU changes nothing else"


@pytest.mark.parametrize(("requested", "nodes", "resolved"), [
    ("auto", GPU_NODES, "gpu"), ("auto", (), "cpu"), ("cpu", GPU_NODES, "cpu"), ("gpu", GPU_NODES, "gpu")])
def test_device_resolution(tmp_path, requested, nodes, resolved):
    assert sandbox.resolve_device(requested, _fake_dev(tmp_path, nodes)) == resolved


def test_asking_for_a_missing_gpu_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no NVIDIA device nodes"):
        sandbox.resolve_device("gpu", _fake_dev(tmp_path, ("null",)))


def test_on_the_cpu_frameworks_see_no_gpu():
    assert sandbox.device_env("cpu") == {"CUDA_VISIBLE_DEVICES": "-1"}
    assert sandbox.device_env("gpu") == {}


@pytest.mark.skipif(bool(sandbox.gpu_device_nodes()), reason="this machine has a GPU")
def test_course_grade_refuses_gpu_without_one_in_a_line(tmp_path):
    from nbfactory import tiny_course

    from dlcourse.runner.grade import grade

    course: Course = tiny_course(tmp_path / "course")
    with pytest.raises(CourseError, match=r"^--device gpu: this machine has no NVIDIA device nodes"):
        grade(course, "tiny", tmp_path / "nothing", device="gpu", unconfined=True)
