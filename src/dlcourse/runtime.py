"""Reproducible, quiet notebook sessions.

Every lecture and assignment notebook starts with ``dlcourse.runtime.setup()``:
TensorFlow's start-up log lines would otherwise land in cell outputs (and in
nbval's comparisons), and unseeded runs would make stored outputs drift.
"""

from __future__ import annotations

import logging
import os
import random
import warnings

DEFAULT_SEED = 8050
#: nbgrader sets this environment variable to "autograde" while it runs a notebook for grading.
GRADING_VARIABLE = "NBGRADER_EXECUTION"


def grading() -> bool:
    """True while a notebook is autograded or validated (nbgrader's Validate button, `course
    validate`): it skips training and tests the handed-in model instead of overwriting it."""
    return os.environ.get(GRADING_VARIABLE) in ("autograde", "validate")


#: The notebooks' flag (``from dlcourse.runtime import GRADING``); a kernel's environment is
#: fixed when it starts, so it is read once, on import.
GRADING = grading()


def quiet_logs() -> None:
    """Silence TensorFlow/absl chatter; must run before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def set_seed(seed: int = DEFAULT_SEED) -> None:
    """Seed Python, NumPy and Keras (and so TensorFlow) in one call."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    import keras

    keras.utils.set_random_seed(seed)


def enable_determinism() -> None:
    """Ask TensorFlow for deterministic kernels, so reruns give equal numbers."""
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def setup(seed: int = DEFAULT_SEED, deterministic: bool = True) -> None:
    """Quiet logs, full float32, seeded generators and (by default) deterministic ops."""
    quiet_logs()
    import tensorflow as tf

    # TensorFlow resets its Python logger when imported in a Jupyter kernel.
    tf.get_logger().setLevel(logging.ERROR)
    from dlcourse.grading.policy import disable_tf32  # the numeric policy lives there

    disable_tf32()
    if deterministic:
        enable_determinism()
    set_seed(seed)
