"""Start a notebook's kernel inside its sandbox: ``python -m dlcourse.harness.kernel_start STAGE WORK -- CMD``.

Makes a user namespace of its own first (its keyrings are its own, it can make no further one,
it keeps no capability: :func:`dlcourse.harness.namespaces.own_user_namespace`). Then copies
the regular files of the read-only ``STAGE`` folder (what lay beside the notebook: a
hand-in model, data the student handed in) into ``WORK`` inside the sandbox's tmpfs, so the
kernel can read and change them as in its own folder without touching the trusted side's
copies; sets the process limits; then becomes the kernel (``exec``).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
from pathlib import Path

#: Processes (threads count) the kernel and everything it starts may have.
MAX_PROCESSES = 4096


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m dlcourse.harness.kernel_start STAGE WORK -- KERNEL-COMMAND...", file=sys.stderr)
        return 2
    stage, work, cmd = Path(argv[0]), Path(argv[1]), argv[3:]
    from dlcourse.harness import namespaces

    namespaces.own_user_namespace(0)
    work.mkdir(parents=True, exist_ok=True)
    for path in sorted(stage.iterdir()) if stage.is_dir() else []:
        if path.is_file() and not path.is_symlink():
            shutil.copyfile(path, work / path.name)
    if os.environ.get("HOME"):  # the sandbox's home (dlcourse.runner.sandbox.HOME), in its tmpfs
        os.makedirs(os.environ["HOME"], exist_ok=True)
    resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.chdir(work)
    os.execv(cmd[0], cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
