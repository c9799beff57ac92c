"""JupyterLab settings of the course and of the student edition (``jupyter/`` folders).

Terminals must find `course` however the lab was started: JupyterLab opens a *login*
shell when its server has no terminal, and a login shell resets PATH from
``/etc/profile``, so ``course: command not found`` where the guide says to run
``course validate``. Both settings put the environment's ``bin/`` on the server's
PATH and open terminals as interactive shells, which keep it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "course": REPO / "jupyter" / "jupyter_server_config.py",
    "edition": REPO / "src" / "dlcourse" / "authoring" / "edition" / "jupyter" / "jupyter_server_config.py",
}
PROBE = """
import json, os, subprocess, sys
from traitlets.config import Config
config = Config()
path = sys.argv[1]
exec(compile(open(path).read(), path, "exec"), {"get_config": lambda: config, "__file__": path})
shell = list(config.ServerApp.terminado_settings["shell_command"])
found = subprocess.run(shell + ["-c", "command -v course"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL).stdout.strip()
print(json.dumps({"shell": shell, "course": found,
                  "extensions": dict(config.ServerApp.jpserver_extensions) if "jpserver_extensions"
                  in config.ServerApp else {},
                  "labextensions": list(config.LabApp.extra_labextensions_path)}))
"""


def _load(settings: Path, path_variable: str) -> dict:
    """The settings file as the server runs it, under a PATH without the environment's bin/."""
    env = {**os.environ, "PATH": path_variable, "SHELL": "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(settings)], capture_output=True, text=True, env=env,
                          timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("which", sorted(SETTINGS))
def test_terminals_find_course_without_an_activated_environment(which):
    loaded = _load(SETTINGS[which], "/usr/bin:/bin")
    assert "-l" not in loaded["shell"] and "-i" in loaded["shell"], loaded
    assert loaded["course"] == str(Path(sys.executable).parent / "course"), loaded


@pytest.mark.parametrize("which", sorted(SETTINGS))
def test_the_course_lab_extension_is_loaded_from_the_settings_folder(which):
    loaded = _load(SETTINGS[which], "/usr/bin:/bin")
    folder = Path(loaded["labextensions"][0])
    assert folder == SETTINGS[which].parent / "labextensions"
    if which == "course":  # the edition gets its copy from `course publish`
        package = json.loads((folder / "dlcourse-lab" / "package.json").read_text())
        assert (folder / "dlcourse-lab" / package["jupyterlab"]["_build"]["load"]).is_file()


def test_the_edition_turns_off_nbgraders_teaching_tools():
    extensions = _load(SETTINGS["edition"], "/usr/bin:/bin")["extensions"]
    assert extensions == {"nbgrader.server_extensions.formgrader": False,
                          "nbgrader.server_extensions.course_list": False,
                          "nbgrader.server_extensions.assignment_list": False,
                          "nbgrader.server_extensions.validate_assignment": True}
    page = json.loads((SETTINGS["edition"].parent / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"]["@jupyterlab/apputils-extension:announcements"] is True
    course_page = json.loads((REPO / "jupyter" / "labconfig" / "page_config.json").read_text())
    assert course_page["disabledExtensions"]["@jupyterlab/apputils-extension:announcements"] is True


def _serve(root: Path, settings: Path, tmp_path: Path):
    """A JupyterLab server on ``root`` with the settings folder ``settings`` (as `make lab` starts it)."""
    import secrets
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_hex(8)
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(settings), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    server = subprocess.Popen([str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--allow-root",
                               f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={root}"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{base}/{path}{'&' if '?' in path else '?'}token={token}",
                                        timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if get("api/status")[0] == 200:
                return server, get
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise AssertionError(f"JupyterLab did not start: {server.communicate(timeout=30)[1][-2000:]}")


@pytest.mark.slow
def test_the_course_lab_loads_its_extension_and_formgraders_notes(tmp_path):
    from nbfactory import tiny_course

    course = tiny_course(tmp_path / "course")
    server, get = _serve(course.root, REPO / "jupyter", tmp_path)
    try:
        status, page = get("lab")
        assert status == 200 and '"dlcourse-lab"' in page, "the lab extension is not in the page config"
        status, script = get("lab/extensions/dlcourse-lab/static/remoteEntry.js")
        assert status == 200 and "validate-hidden-tests" in script
        status, notes = get("dlcourse/submission_notes/tiny")
        assert status == 200 and json.loads(notes) == {}
    finally:
        server.terminate()
        server.communicate(timeout=30)



@pytest.mark.slow
def test_the_edition_lab_serves_no_teaching_tool(tmp_path):
    from dlcourse.authoring.publish import edition_files
    from dlcourse.runner.course import Course

    edition = tmp_path / "edition"
    for name, data in edition_files(Course(REPO)).items():
        (edition / name).parent.mkdir(parents=True, exist_ok=True)
        (edition / name).write_bytes(data)
    server, get = _serve(edition, edition / "jupyter", tmp_path)
    try:
        status, page = get("lab")
        assert status == 200 and '"dlcourse-lab"' in page
        for plugin in ("formgrader", "create-assignment", "course-list", "menu"):
            assert f'"@jupyter/nbgrader:{plugin}"' in page  # listed among the disabled extensions
        for path in ("formgrader", "formgraders", "assignments?course_id=x"):
            assert get(path)[0] == 404, path
        assert get("nbgrader_version?version=0.9.6")[0] == 200  # the Validate button's server side
    finally:
        server.terminate()
        server.communicate(timeout=30)
