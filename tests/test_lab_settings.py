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
