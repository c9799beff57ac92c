"""JupyterLab server settings of the student edition (`make lab` puts this folder on
JUPYTER_CONFIG_PATH).

- Of nbgrader, students use only the notebook's Validate button: the teaching
  tools (formgrader, Create Assignment, the course and assignment lists) are off,
  here and in ``labconfig/page_config.json``, as are JupyterLab's news pop-ups.
- The course's small lab extension (``labextensions/``) adds to the Validate
  dialog which test cells hold hidden tests.
- Terminals find `course`: JupyterLab starts a *login* shell when the server has
  no terminal of its own, and a login shell resets PATH (``/etc/profile``), so the
  environment's ``bin/`` would be lost. This puts that folder first on the
  server's PATH and starts terminals as interactive shells that keep it.
"""

import os
import sys

c = get_config()  # noqa: F821 - injected by traitlets

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)

c.ServerApp.jpserver_extensions = {
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
    "nbgrader.server_extensions.assignment_list": False,
    "nbgrader.server_extensions.validate_assignment": True,
}
c.LabApp.extra_labextensions_path = [os.path.join(HERE, "labextensions")]
if BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = BIN + os.pathsep + os.environ.get("PATH", "")
c.ServerApp.terminado_settings = {"shell_command": [os.environ.get("SHELL") or "/bin/sh", "-i"]}
