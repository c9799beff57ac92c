"""A course or Python environment under /tmp stays readable inside each job of a repeat server.

A job mounts a fresh tmpfs on /tmp; whatever the sandbox had bound below /tmp (a clone in
/tmp, its .venv) must be bound again into it, read-only, or every hidden test repeated
outside the notebook fails with an ImportError.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from dlcourse.runner import sandbox

# In the sandbox, as a repeat server does for each job: fork, isolate, fork, seal.
JOB = textwrap.dedent("""
    import json, os, sys
    from dlcourse.harness import namespaces
    namespaces.own_user_namespace(2)
    open("/tmp/left-by-server", "w").close()
    r, w = os.pipe()
    if os.fork() == 0:
        namespaces.isolate(1 << 20)
        if os.fork() == 0:
            namespaces.seal(16)
            seen = {"marker": open("/tmp/elsewhere/env/marker").read(),
                    "listing": sorted(os.listdir("/tmp")),
                    "masked": os.listdir("/tmp/elsewhere/env/hidden")}
            try:
                open("/tmp/elsewhere/env/new", "w").close()
                seen["write"] = "allowed"
            except OSError as exc:
                seen["write"] = type(exc).__name__
            os.write(w, json.dumps(seen).encode())
            os._exit(0)
        os._exit(os.wait()[1])
    os.close(w)
    os.wait()
    sys.stdout.write(os.read(r, 65536).decode())
""")


@pytest.mark.skipif(sandbox.detect().kind != "bubblewrap", reason="needs bubblewrap")
def test_binds_below_tmp_survive_the_jobs_tmpfs(tmp_path):
    env = tmp_path / "env"
    (env / "hidden").mkdir(parents=True)
    (env / "hidden" / "secret").write_text("x")
    (env / "marker").write_text("reachable")
    for path in (tmp_path, env, env / "hidden"):
        path.chmod(0o755)
    (env / "marker").chmod(0o644)
    # The folder bound below /tmp with a mask inside it, as the sandbox binds a clone's .venv and
    # src and masks the TA side of the package.
    args = sandbox.bwrap_args(sandbox.Layout())
    end = args.index("--remount-ro")
    args[end:end] = ["--perms", "0755", "--dir", "/tmp/elsewhere", "--ro-bind", str(env), "/tmp/elsewhere/env",
                     "--size", "4096", "--perms", "0555", "--tmpfs", "/tmp/elsewhere/env/hidden",
                     "--remount-ro", "/tmp/elsewhere/env/hidden"]
    cmd = [shutil.which("bwrap"), *args, "--", *sandbox._inside_prefix(), sys.executable, "-c", JOB]
    done = subprocess.run(cmd, capture_output=True, text=True, env=sandbox.environment(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout)
    assert seen["marker"] == "reachable"
    assert seen["write"] in ("OSError", "PermissionError"), "the bound folder must stay read-only"
    assert seen["masked"] == [], "a mask inside a bound folder must stay in place"
    assert "left-by-server" not in seen["listing"], "the job's /tmp is fresh"
    assert {"elsewhere", "job"} <= set(seen["listing"])
