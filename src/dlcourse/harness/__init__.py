"""What runs inside the sandbox to repeat the hidden tests outside the student's notebook.

This package is the confined side of the trusted repeat (see :mod:`dlcourse.runner.repeat`
for the trusted side). It imports only the student side of ``dlcourse`` (the sandbox does not
see the TA side at all) and holds nothing worth stealing: no reference output, no reserved
split, no reference implementation. Those stay with the trusted side, which sends each job
only inputs and weights and compares the outputs that come back.

- :mod:`~dlcourse.harness.namespaces`: a forked child enters fresh user, mount, PID, IPC,
  network and UTS namespaces of its own, with a private size-capped tmpfs and no capability.
- :mod:`~dlcourse.harness.zygote`: the warm server (TensorFlow imported once) that forks one
  such child per job and relays bytes between the trusted side and the child.
- :mod:`~dlcourse.harness.answer`: what the child does with a job.
- :mod:`~dlcourse.harness.frameworks`: framework-free children (Keras and TensorFlow absent).
"""
