"""The course's JupyterLab server settings (`make lab` puts this folder on JUPYTER_CONFIG_PATH).

- The course's own small lab extension (``labextensions/``) loads from here,
  without installing anything into the environment.
- Terminals find `course`: JupyterLab starts a *login* shell when the server has
  no terminal of its own, and a login shell resets PATH (``/etc/profile``), so the
  environment's ``bin/`` would be lost. This puts that folder first on the
  server's PATH and starts terminals as interactive shells that keep it.
- formgrader's Manage Submissions marks hand-ins that could not be graded (with the
  reason) and late ones (``dlcourse.runner.formgrader_notes``).
"""

import os
import sys

c = get_config()  # noqa: F821 - injected by traitlets

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)

c.LabApp.extra_labextensions_path = [os.path.join(HERE, "labextensions")]
if BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = BIN + os.pathsep + os.environ.get("PATH", "")
c.ServerApp.terminado_settings = {"shell_command": [os.environ.get("SHELL") or "/bin/sh", "-i"]}
c.ServerApp.jpserver_extensions = {"dlcourse.runner.formgrader_notes": True}
