"""Framework-free jobs: functions the assignment says to write in NumPy are graded without Keras.

A function such as ``lstm_cell_forward`` must be written from scratch; inside a process that
has Keras, nothing stops a student's code from calling Keras's own LSTM (a guard in the same
process can always be undone). So such functions are graded by a second repeat server whose
sandbox does not contain the frameworks at all: their package folders are hidden under empty
tmpfs mounts (:func:`dlcourse.runner.sandbox.framework_masks`). The stubs below only make the
failure readable: ``import keras`` still works (a student's unused import costs nothing), and
using anything from it raises :class:`FrameworkUnavailable` with a message saying why.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

#: Packages hidden from framework-free jobs: the deep-learning frameworks and their parts.
FRAMEWORKS = ("tensorflow", "keras", "tf_keras", "tensorboard", "tensorflow_io_gcs_filesystem", "torch",
              "jax", "jaxlib", "flax")


class FrameworkUnavailable(ImportError):
    """A framework was used where the function must be written in NumPy."""


class _Stub(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise FrameworkUnavailable(f"{self.__name__}.{name} is not available here: this function is graded "
                                   "without Keras or TensorFlow; write it with NumPy")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in FRAMEWORKS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Stub(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        return None


def install_stubs() -> None:
    """From now on every framework import in this process gives a stub (see the docstring)."""
    for name in list(sys.modules):
        if name.split(".")[0] in FRAMEWORKS:
            del sys.modules[name]
    sys.meta_path.insert(0, _StubFinder())
