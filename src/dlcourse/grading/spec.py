"""One definition per graded function and per hand-in model.

A :class:`FunctionSpec` says how a graded function's hidden test works: which
reference cases it reads, how the student's function is called on a case
(``produce``: the raw output, never compared there), which other graded
functions are replaced by reference versions while it runs (``stand_ins``),
and how an output is compared and diagnosed (``judge``). The hidden test cell
inside the notebook calls :meth:`FunctionSpec.check`; the repeat outside the
kernel (:mod:`dlcourse.runner.verify`) calls ``run`` in a confined process and
``judge`` in the trusted one. Both paths use the same code, so they cannot
drift apart, and both give the same message.

A :class:`HandinContract` does the same for a handed-in model: file, reserved
split, metric and threshold are written once, and the notebook's hidden cell,
its prose and the repeat read them from here.

An :class:`AssignmentSpec` declares one practical: its graded functions, its
reference file and how the solution makes it, its hand-in. It tells each spec
where it lives (the hidden cell's import), and the course finds it
(:mod:`dlcourse.grading.practicals`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlcourse.grading.compare import GradingFailure, assert_matches
from dlcourse.grading.policy import TOLERANCE, relative_error
from dlcourse.grading.references import Case, load_cases

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


@dataclass
class Produced:
    """What the student's function gave for one case: its output and, where the
    case names inner layers, those layers' outputs (to say which part is wrong)."""

    output: np.ndarray
    inner: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class StandIn:
    """A reference version of graded function ``name``, used only while *another*
    graded function that may call it is tested, so that one mistake costs marks once."""

    name: str
    reference: Callable


_MISSING = object()
#: Names whose reference version is running right now, called through a stand-in.
_STANDING_IN: ContextVar[frozenset[str]] = ContextVar("dlcourse_standing_in", default=frozenset())


def require_stand_in(name: str) -> None:
    """First line of a reference that must not serve as a student's own answer: it runs only
    when called in place of the student's ``name``, while another function is tested."""
    if name not in _STANDING_IN.get():
        raise GradingFailure(f"the grader's reference {name} runs only in place of your {name} while "
                             "another function's tests run: write your own")


def _guarded(stand_in: StandIn, alive: list[bool]) -> Callable:
    """The reference, usable only inside the :func:`isolated` block that installed it."""
    def reference(*args, **kwargs):
        if not alive[0]:
            raise GradingFailure(f"the reference {stand_in.name} is only available while another "
                                 "function's tests run")
        token = _STANDING_IN.set(_STANDING_IN.get() | {stand_in.name})
        try:
            return stand_in.reference(*args, **kwargs)
        finally:
            _STANDING_IN.reset(token)
    reference.__name__ = stand_in.name
    return reference


@contextlib.contextmanager
def isolated(function: Callable, stand_ins: Iterable[StandIn]) -> Iterator[None]:
    """Within the block, the names in ``stand_ins`` resolve to reference versions
    wherever ``function`` looks them up (its module globals: the notebook's namespace).

    The student's own versions are put back afterwards, whatever happens.
    """
    stand_ins = tuple(stand_ins)
    namespace = getattr(function, "__globals__", None)
    if not stand_ins or not isinstance(namespace, dict):
        yield
        return
    alive = [True]
    saved = {s.name: namespace.get(s.name, _MISSING) for s in stand_ins}
    for s in stand_ins:
        namespace[s.name] = _guarded(s, alive)
    try:
        yield
    finally:
        alive[0] = False
        for name, value in saved.items():
            if value is _MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def _refuse(*_args, **_kwargs):
    # Runs as a lecture helper's code, with that helper's module globals: builtins only.
    raise RuntimeError("a graded function must compute its answer itself, not call the lectures' helper "
                       "in dlcourse.architectures")


@contextlib.contextmanager
def helpers_refused(helpers: Iterable[Callable]) -> Iterator[None]:
    """Within the block, the lectures' helpers that compute a graded answer raise instead.

    The function objects themselves are switched (their code), so a name the
    student imported earlier, or a helper the student's function is, is covered
    too; they are restored afterwards, whatever happens.
    """
    helpers = tuple(helpers)
    saved = [h.__code__ for h in helpers]
    try:
        for helper in helpers:
            helper.__code__ = _refuse.__code__
        yield
    finally:
        for helper, code in zip(helpers, saved, strict=True):
            helper.__code__ = code


def failure_message(exc: BaseException) -> str:
    """How a failure while producing an output reads, the same inside and outside the kernel."""
    if isinstance(exc, GradingFailure):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()


def _load(cases: dict[str, Case] | str | Path) -> dict[str, Case]:
    return cases if isinstance(cases, dict) else load_cases(cases)


def _hidden_block(module: str, name: str, call: str) -> str:
    return f"{HIDDEN_BEGIN}\nfrom {module} import {name}\n\n{call}\n{HIDDEN_END}"


def tests_of(function: str, grade_ids: Iterable[str]) -> list[str]:
    """The test cells of contract function ``function``: ``test_<function>`` and
    ``test_<function>_<suffix>`` (no other grade_id may start so, see the course's design)."""
    return [g for g in grade_ids if g == f"test_{function}" or g.startswith(f"test_{function}_")]


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """How graded function ``function`` is tested against its hidden reference cases.

    Declared with keywords in its practical's spec module; the :class:`AssignmentSpec` that
    lists it fills in where it lives (``module``, ``name``) and its reference file.
    """

    function: str  # the contract name, e.g. "lstm_forward"
    select: str  # prefix of the names of its cases in the reference file
    produce: Callable[[Callable, Case], Produced]
    describe: Callable[[Case], str]  # the call, as the message names it
    diagnose: Callable[[Case], Callable[[np.ndarray, np.ndarray], list[str]]] | None = None
    locate: Callable[[Case], Callable[[dict[str, bool]], list[str]]] | None = None
    stand_ins: tuple[StandIn, ...] = ()
    #: Lecture helpers that compute this function's answer: they refuse while it is tested.
    refused_helpers: tuple[Callable, ...] = ()
    tolerance: float = TOLERANCE
    #: True when ``diagnose`` states facts about the output itself (not probabilities, wrong
    #: size) that outrank the first differing inner layer.
    diagnose_first: bool = False
    test_cell: str = ""  # grade_id of the test cell holding the hidden block, if not the usual one
    #: False for a function the assignment says to write in NumPy: its hidden test is repeated
    #: where no framework is installed (dlcourse.harness.frameworks), so that no guard inside
    #: the student's process is needed to keep, say, Keras's LSTM out of it.
    frameworks: bool = True
    module: str = field(default="", compare=False)  # set by the AssignmentSpec (hidden cell's import)
    name: str = field(default="", compare=False)  # this spec's name in ``module``
    reference_file: str = field(default="", compare=False)  # hidden_*_refs.npz beside the source notebook

    @property
    def test_id(self) -> str:
        """grade_id of the test cell whose hidden block calls :meth:`check`."""
        return self.test_cell or f"test_{self.function}_reference"

    def cases(self, cases: dict[str, Case] | str | Path | None = None) -> list[Case]:
        return [c for c in _load(cases or self.reference_file).values() if c.name.startswith(self.select)]

    def isolated(self, function: Callable):
        """Context manager: the other graded functions ``function`` calls are reference versions."""
        return isolated(function, self.stand_ins)

    def run(self, function: Callable, case: Case, stand_ins: tuple[StandIn, ...] | None = None) -> Produced:
        """The student's output for ``case``, with the stand-ins (``stand_ins`` if given, else the
        spec's own) in place and the lecture helpers that would answer for the student refusing;
        not compared."""
        chosen = self.stand_ins if stand_ins is None else stand_ins
        with isolated(function, chosen), helpers_refused(self.refused_helpers):
            return self.produce(function, case)

    def judge(self, case: Case, produced: Produced) -> str | None:
        """None when ``produced`` matches the case, else the message that says what is wrong."""
        def located() -> list[str]:
            if self.locate is None or not case.probes:
                return []
            matches = {name: name in produced.inner and produced.inner[name].shape == want.shape
                       and relative_error(produced.inner[name], want) <= self.tolerance
                       for name, want in case.probes.items()}
            return self.locate(case)(matches)

        def hints(got: np.ndarray, expected: np.ndarray) -> list[str]:
            diagnosed = (lambda: self.diagnose(case)(got, expected)) if self.diagnose else list
            # A wrong shape is best explained from the output; wrong values by the first inner
            # layer that differs.
            output_first = self.diagnose_first or got.shape != expected.shape
            first, second = (diagnosed, located) if output_first else (located, diagnosed)
            return first() or second()

        try:
            assert_matches(produced.output, case.expected, what=self.describe(case), diagnose=hints,
                           tolerance=self.tolerance)
        except GradingFailure as failure:
            return str(failure)
        return None

    def check(self, function: Callable, cases: dict[str, Case] | str | Path | None = None) -> None:
        """The hidden test: every case, in order; raises naming each distinct failure
        (:func:`combine_failures`), so that two mistakes in one function are both named."""
        failures: list[str] = []
        for case in self.cases(cases):
            try:
                message = self.judge(case, self.run(function, case))
            except GradingFailure as failure:  # e.g. a layer the weights cannot be loaded into
                message = str(failure)
            except Exception as exc:  # the student's code raised: its traceback, unless a case failed before
                if not failures:
                    raise
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if message:
                failures.append(message)
        if failures:
            raise GradingFailure(combine_failures(failures))

    def hidden_source(self) -> str:
        """The hidden block of the test cell, as the source notebook must hold it."""
        return _hidden_block(self.module, self.name, f"{self.name}.check({self.function})")


def combine_failures(messages: Iterable[str]) -> str:
    """One message for the failing cases of a hidden test, naming each distinct diagnosis.

    A case's diagnosis is its ``- `` lines (which branch, gate or level is wrong).
    Cases fail for different reasons when a function holds two mistakes (one case
    exercises the stride, another the channels); stopping at the first would name
    one. Each distinct diagnosis is reported once, by the first case that shows it;
    a single one reads exactly as that case's message.
    """
    groups: dict[tuple[str, ...], str] = {}
    for message in messages:
        diagnosis = tuple(line for line in message.splitlines()[1:] if line.startswith("- "))
        groups.setdefault(diagnosis, message)
    if len(groups) <= 1:
        return next(iter(groups.values()), "")
    shown = [message.replace("\n", "\n   ") for message in groups.values()]
    return f"{len(shown)} different failures:\n" + "\n".join(f"{i}. {m}" for i, m in enumerate(shown, 1))


@dataclass(frozen=True, kw_only=True)
class HandinContract:
    """A handed-in model: file, reserved split, metric and threshold, defined once."""

    grade_id: str  # the hidden test cell
    model_file: str
    data_file: str  # hidden_* file beside the source notebook
    load_split: Callable[[str], tuple[np.ndarray, np.ndarray]]  # path -> (inputs, labels)
    num_classes: int
    metric: str  # how the prose names it, e.g. "beat F1"
    score: Callable[[np.ndarray, np.ndarray], float]  # (probabilities, labels) -> metric
    threshold: float
    output_shape: Callable[[tuple[int, ...]], tuple[int, ...]] | None = None  # input shape -> per-item output
    output_meaning: str = "class probabilities"
    detail: Callable[[np.ndarray, np.ndarray], str] | None = None  # e.g. the per-class scores
    batch_size: int = 64
    module: str = field(default="", compare=False)  # set by the AssignmentSpec (hidden cell's import)
    name: str = field(default="", compare=False)

    @property
    def stated(self) -> str:
        """The target as the notebook's prose states it (bold in the markdown)."""
        return f"{self.metric} ≥ {self.threshold:.2f}"

    def summary(self) -> str:
        """The visible first line of the hidden cell."""
        return (f"# Hidden test: {self.model_file} on the reserved test split, "
                f"{self.metric} >= {self.threshold:.2f}.")

    def produce(self, model_path: str | Path, inputs: np.ndarray) -> np.ndarray:
        """The model's probabilities for ``inputs`` (loaded in safe mode, contract checked)."""
        from dlcourse.grading.handin import load_handin, predict_probabilities

        model = load_handin(model_path, inputs.shape[1:], self.num_classes)
        if self.output_shape is not None:
            want = self.output_shape(tuple(inputs.shape[1:]))
            if tuple(model.output_shape[1:]) != want:
                raise GradingFailure(f"{Path(model_path).name}: output shape {model.output_shape[1:]}, "
                                     f"the contract says {want}: {self.output_meaning}")
        return predict_probabilities(model, inputs, batch_size=self.batch_size)

    def judge(self, probabilities: np.ndarray, labels: np.ndarray) -> tuple[bool, str]:
        """(passed, message) for the model's probabilities on the reserved split."""
        if probabilities.shape[:-1] != labels.shape:
            return False, f"predictions of shape {probabilities.shape} for labels of shape {labels.shape}"
        value = self.score(probabilities, labels)
        detail = f" ({self.detail(probabilities, labels)})" if self.detail else ""
        if value < self.threshold:
            return False, (f"{self.metric} on the test split {value:.3f}{detail} is below the threshold "
                           f"{self.threshold:.2f}")
        return True, f"{self.metric} on the test split {value:.3f}{detail}; threshold {self.threshold:.2f}"

    def check(self, folder: str | Path = ".") -> None:
        """The hidden test: prints the score, raises below the threshold.

        Returns nothing: a test cell whose last line shows a number would be read
        by nbgrader as a partial score.
        """
        folder = Path(folder)
        inputs, labels = self.load_split(str(folder / self.data_file))
        passed, message = self.judge(self.produce(folder / self.model_file, inputs), labels)
        if not passed:
            raise GradingFailure(message)
        print(message)

    def hidden_source(self) -> str:
        return _hidden_block(self.module, self.name, f"{self.name}.check()")

    def cell_source(self) -> str:
        """The whole hidden test cell: the visible summary line, then the hidden block."""
        return f"{self.summary()}\n{self.hidden_source()}"


def _bind(owner: object, module: str, namespace: dict, **values: str) -> None:
    """Tell a spec or contract where it lives: the name it has in ``module``'s namespace."""
    names = [key for key, value in namespace.items() if value is owner]
    if not names:
        raise TypeError(f"{module}: every spec an AssignmentSpec lists must be a module-level name of "
                        f"{module} (the hidden cell imports it from there)")
    for key, value in {"module": module, "name": names[0], **values}.items():
        object.__setattr__(owner, key, value)


@dataclass(frozen=True, kw_only=True)
class AssignmentSpec:
    """Everything the course knows about one practical's grading, declared once in its spec
    module (``ASSIGNMENT = AssignmentSpec(...)`` in ``dlcourse.grading.<id>``).

    The cells whose code makes the references (setup, then each graded function's cell), the
    test cells of each function, the hidden blocks' imports and each function's cases all
    derive from it; the course finds it by its ``assignment`` (:func:`dlcourse.grading.practicals.assignment_spec`).
    """

    assignment: str  # the practical's id: solutions/<assignment>/<assignment>.ipynb
    module: str  # the spec module's ``__name__``
    functions: tuple[FunctionSpec, ...] = ()  # in notebook order
    reference_file: str = ""  # hidden_*_refs.npz beside the source notebook (needed with functions)
    #: (solution functions by contract name) -> reference cases; None where no function is graded
    make_cases: Callable[..., list[Case]] | None = None
    handin: HandinContract | None = None
    setup_cell: str = "setup"  # grade_id of the cell every solution cell runs after

    def __post_init__(self) -> None:
        namespace = vars(sys.modules[self.module])
        for spec in self.functions:
            _bind(spec, self.module, namespace, reference_file=self.reference_file)
        if self.handin is not None:
            _bind(self.handin, self.module, namespace)

    @property
    def cells(self) -> tuple[str, ...]:
        """The solution cells that make the references, setup first."""
        return (self.setup_cell, *(spec.function for spec in self.functions))

    def function(self, name: str) -> FunctionSpec:
        """The spec of graded function ``name``."""
        for spec in self.functions:
            if spec.function == name:
                return spec
        raise KeyError(f"{self.assignment} grades no function {name!r}")

    def tests_of(self, function: str, grade_ids: Iterable[str]) -> list[str]:
        """The test cells of one of this practical's functions."""
        return tests_of(self.function(function).function, grade_ids)

    def hidden_blocks(self) -> dict[str, str]:
        """grade_id of each test cell with a hidden block -> the block, as the source must hold it."""
        blocks = {spec.test_id: spec.hidden_source() for spec in self.functions}
        if self.handin is not None:
            blocks[self.handin.grade_id] = self.handin.hidden_source()
        return blocks

    def cases_by_function(self, cases: dict[str, Case] | str | Path) -> dict[str, list[Case]]:
        """Each graded function's cases, in stored order."""
        loaded = _load(cases)
        return {spec.function: spec.cases(loaded) for spec in self.functions}

    def make(self, namespace: dict) -> list[Case]:
        """The reference cases, from the solution's functions in ``namespace``."""
        if self.make_cases is None:
            return []
        return self.make_cases(**{spec.function: namespace[spec.function] for spec in self.functions})
