"""The course as its users meet it: headless Chromium driving JupyterLab with nbgrader's extensions.

Each test starts a real JupyterLab (loopback, random port, random token, its
own Jupyter folders) on a temporary copy of the course and clicks through it as
a student or a TA would. Screenshots of every step, the server log and
chromedriver's log land in ``test-artifacts/browser/<test>/`` (git-ignored), so
a failure in CI can be seen, not guessed.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs
them). Without them the tests are skipped on a laptop and fail in CI
(``CI`` set), so a broken CI image cannot pass silently.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from dlcourse.runner import sandbox
from dlcourse.runner.course import Course, scratch_course

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts" / "browser"
ASSIGNMENT = "lstm"
EXCHANGE_ERRORS = ("Error fetching courses", "exchange directory does not exist",
                   "could not be created", "Unwritable directory")

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _browser_binaries() -> tuple[str, str]:
    """Debian's chromium and its chromedriver; skip (or fail in CI) when absent."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "headless browser tests need Debian's chromium and chromium-driver (see .ci/run)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jupyter_env(home: Path) -> dict[str, str]:
    """Jupyter folders of the test's own, so no user setting or kernel of this machine leaks in."""
    env = dict(os.environ)
    for key, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                     ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"), ("MPLCONFIGDIR", "mpl")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[key] = str(home / sub)
    # The course's lab configuration, as `make lab` uses it.
    env["JUPYTER_CONFIG_PATH"] = str(REPO / "jupyter")
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver
    return env


class Lab:
    """A JupyterLab server on loopback, stopped (with its kernels) when the test ends."""

    def __init__(self, root: Path, home: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.root, self.home = root, home
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.env = {**_jupyter_env(home), **(env or {})}
        cmd = [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={self.port}",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=root, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.log = log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"JupyterLab exited ({self.proc.returncode}); see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"JupyterLab did not answer within {timeout:g} s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # shuts down its kernels too
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._log.close()


class Browser:
    """Headless Chromium with screenshots numbered by step."""

    def __init__(self, artifacts: Path) -> None:
        from selenium.webdriver.chrome.service import Service

        binary, driver = _browser_binaries()
        # Selenium Manager is skipped when the driver's path is given; offline in any case.
        os.environ.setdefault("SE_OFFLINE", "true")
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--proxy-server=direct://", "--proxy-bypass-list=*"):
            options.add_argument(arg)
        service = Service(executable_path=driver, log_output=str(artifacts / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(90)
        self.driver.set_script_timeout(30)
        self.artifacts = artifacts
        self.step = 0

    def shot(self, name: str) -> Path:
        self.step += 1
        path = self.artifacts / f"{self.step:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def wait(self, condition: Callable[[Any], Any], timeout: float, what: str) -> Any:
        try:
            # JupyterLab re-renders cells (a reload, a re-run): an element read a moment ago may be
            # gone; the condition is then asked again, not failed.
            return WebDriverWait(self.driver, timeout, poll_frequency=0.25,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(condition)
        except TimeoutException:
            self.shot(f"timeout-{what.replace(' ', '-')[:40]}")
            raise AssertionError(f"waited {timeout:g} s for {what}") from None

    def css(self, selector: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def menu(self, top: str, item: str) -> None:
        """Click ``top`` in JupyterLab's menu bar, then ``item`` in the menu that opens."""
        bar = self.wait(lambda d: [e for e in self.css(".lm-MenuBar-item") if e.text == top],
                        30, f"menu {top}")
        bar[0].click()
        entries = self.wait(
            lambda d: [e for e in self.css(".lm-Menu .lm-Menu-itemLabel")
                       if e.is_displayed() and e.text.strip() == item],
            10, f"menu item {item}")
        entries[0].click()

    def open_lab(self, lab: Lab, path: str = "") -> None:
        self.driver.get(f"{lab.url}/lab{'/tree/' + path if path else ''}?token={lab.token}")
        self.wait(lambda d: self.css("#jp-main-dock-panel"), 90, "JupyterLab to load")

    def quit(self) -> None:
        with contextlib.suppress(Exception):
            self.shot("final")
        with contextlib.suppress(Exception):
            self.driver.quit()


@pytest.fixture
def artifacts(request) -> Path:
    folder = ARTIFACTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nbrowser artifacts (screenshots, server log): {folder}")
    return folder


@pytest.fixture
def browser(artifacts) -> Iterator[Browser]:
    chromium = Browser(artifacts)
    try:
        yield chromium
    finally:
        chromium.quit()


@pytest.fixture
def start_lab(artifacts, tmp_path) -> Iterator[Callable[..., Lab]]:
    servers: list[Lab] = []

    def start(root: Path, env: dict[str, str] | None = None) -> Lab:
        lab = Lab(root, tmp_path / f"jupyter-home-{len(servers)}", artifacts / f"server-{len(servers)}.log",
                  env)
        servers.append(lab)
        lab.wait_ready()
        return lab

    try:
        yield start
    finally:
        for lab in servers:
            lab.stop()


def student_course(dest: Path) -> Path:
    """The student edition as `course publish` writes it: what a student opens."""
    from dlcourse.authoring.publish import publish

    publish(Course(REPO), dest)
    return dest


def edition_env(edition: Path) -> dict[str, str]:
    """The edition's lab settings, as its `make lab` uses them (not the course's)."""
    return {"JUPYTER_CONFIG_PATH": str(edition / "jupyter")}


def finish_all_but_sigmoid(notebook_path: Path) -> None:
    """The student's later state: every other part done and the model trained (the example
    submission), the sigmoid cell as the student left it."""
    example = REPO / "examples" / "submissions" / ASSIGNMENT / "perfect"
    mine = nbformat.read(notebook_path, as_version=4)
    done = nbformat.read(example / f"{ASSIGNMENT}.ipynb", as_version=4)
    sigmoid = next(c for c in mine.cells if _grade_id(c) == "sigmoid")
    done.cells = [sigmoid if _grade_id(c) == "sigmoid" else c for c in done.cells]
    nbformat.write(done, notebook_path)
    shutil.copyfile(example / f"{ASSIGNMENT}_model.keras", notebook_path.parent / f"{ASSIGNMENT}_model.keras")


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _cell_index(notebook_path: Path, grade_id: str) -> int:
    cells = nbformat.read(notebook_path, as_version=4).cells
    return next(i for i, c in enumerate(cells) if _grade_id(c) == grade_id)


def _saved_source(notebook_path: Path, grade_id: str) -> str:
    with contextlib.suppress(Exception):  # mid-write: try again
        notebook = nbformat.read(notebook_path, as_version=4)
        return next(c.source for c in notebook.cells if _grade_id(c) == grade_id)
    return ""


def notebook_cells(browser: Browser, notebook_path: Path) -> list:
    """The notebook's cells in the page, once JupyterLab has rendered all of them."""
    count = len(nbformat.read(notebook_path, as_version=4).cells)
    return browser.wait(lambda d: (lambda cells: cells if len(cells) == count else None)(
        browser.css(".jp-Notebook .jp-Cell")), 60, f"the notebook's {count} cells")


def type_into_cell(browser: Browser, notebook_path: Path, index: int, code: str) -> None:
    """Replace a code cell's text the way a student does: click, select all, type."""
    cell = notebook_cells(browser, notebook_path)[index]
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)

    def editor_text() -> str:
        return cell.find_element(By.CSS_SELECTOR, ".cm-content").text

    for _attempt in range(2):  # a keystroke lost to a busy page is typed again
        cell.find_element(By.CSS_SELECTOR, ".cm-content").click()
        ActionChains(browser.driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).perform()
        ActionChains(browser.driver).send_keys(code).perform()
        with contextlib.suppress(TimeoutException):
            WebDriverWait(browser.driver, 10).until(lambda d: editor_text() == code)
            return
    raise AssertionError(f"the editor holds {editor_text()!r}, not the typed {code!r}")


def save_and_validate(browser: Browser, notebook: Path, code: str, label: str) -> str:
    """Save (checked on disk), press nbgrader's Validate button, return the result dialog's text."""
    browser.menu("File", "Save Notebook")
    browser.wait(lambda d: _saved_source(notebook, "sigmoid") == code, 30, "the notebook saved to disk")
    browser.shot(f"{label}-saved")
    button = browser.wait(lambda d: [b for b in browser.css(".jp-NotebookPanel-toolbar .jp-Toolbar-item")
                                     if b.is_displayed() and b.text.strip() == "Validate"], 10,
                          "the Validate button")
    button[0].click()
    started = time.monotonic()
    dialog = browser.wait(
        lambda d: [x for x in browser.css(".jp-Dialog") if "Validat" in x.text and "Validating" not in x.text],
        300, "the validation result")
    text = dialog[0].text
    print(f"Validate ({label}) answered in {time.monotonic() - started:.0f} s")
    browser.shot(f"{label}-validate-result")
    close = dialog[0].find_elements(By.CSS_SELECTOR, ".jp-Dialog-button")
    if close:
        close[-1].click()
    browser.wait(lambda d: not browser.css(".jp-Dialog"), 10, "the dialog to close")
    return text


#: What the course's lab extension adds to nbgrader's Validate dialog.
HIDDEN_NOTE = "hold hidden tests that did not run here"
CORRECT_SIGMOID = "def sigmoid(z): return 0.5 * (1 + np.tanh(0.5 * np.asarray(z, dtype=float)))"
WRONG_SIGMOID = "def sigmoid(z): return 1 / (1 + np.exp(z))"


def test_student_validate_button_gives_a_failing_and_a_passing_verdict(tmp_path, browser, start_lab):
    course = student_course(tmp_path / "student")
    notebook = course / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    index = _cell_index(notebook, "sigmoid")
    lab = start_lab(course, edition_env(course))

    browser.open_lab(lab, f"assignments/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
    browser.wait(lambda d: any("Idle" in bar.text for bar in browser.css("#jp-main-statusbar")), 90,
                 "the kernel to start")
    notebook_cells(browser, notebook)
    browser.shot("notebook-open")

    # Run All stops at the first cell that raises: the sigmoid stub.
    browser.menu("Run", "Run All Cells")
    cell = notebook_cells(browser, notebook)[index]
    browser.wait(lambda d: "NotImplementedError" in cell.text, 120, "Run All to reach the sigmoid stub")
    browser.shot("run-all-stops-at-stub")

    # Failing: a sigmoid with the sign wrong, in the freshly started practical.
    type_into_cell(browser, notebook, index, WRONG_SIGMOID)
    verdict = save_and_validate(browser, notebook, WRONG_SIGMOID, "wrong-sigmoid")
    assert "Success" not in verdict
    assert "failed" in verdict.lower(), verdict
    assert "AssertionError: sigmoid(z) = 1 / (1 + exp(-z))" in verdict, verdict
    # cells outside the tests that raised are named too (the grader runs them as well) ...
    assert ": not a test cell, but it raised (the grader runs it too)" in verdict, verdict
    # ... and the dialog says that hidden tests exist and did not run
    assert HIDDEN_NOTE in verdict and "test_lstm_forward_reference" in verdict, verdict

    # Passing: later, everything else done and the model trained; the sigmoid fixed last.
    finish_all_but_sigmoid(notebook)
    browser.menu("File", "Reload Notebook from Disk")
    with contextlib.suppress(TimeoutException):  # JupyterLab may ask first
        WebDriverWait(browser.driver, 3).until(lambda d: browser.css(".jp-Dialog .jp-mod-accept"))[0].click()
    forward = _cell_index(notebook, "lstm_forward")

    def reloaded(_) -> bool:
        cells = browser.css(".jp-Notebook .jp-Cell")
        return len(cells) > forward and "NotImplementedError" not in cells[forward].text

    browser.wait(reloaded, 30, "the finished notebook to load")
    browser.shot("finished-notebook-reloaded")
    type_into_cell(browser, notebook, index, CORRECT_SIGMOID)
    verdict = save_and_validate(browser, notebook, CORRECT_SIGMOID, "correct-sigmoid")
    assert "Success! Your notebook passes all the visible tests." in verdict, verdict
    assert "passes all the tests" not in verdict, verdict
    assert f"3 test cell(s) {HIDDEN_NOTE}" in verdict, verdict
    for name in ("test_lstm_cell_forward_reference", "test_lstm_forward_reference", "test_sequence_models_handin"):
        assert name in verdict, verdict
    assert "They run when your notebook is graded" in verdict, verdict


TEACHING_TOOLS = ("Formgrader", "Create Assignment", "Course List", "Assignment List", "Add new assignment")


def test_student_edition_shows_no_teaching_tool_and_no_news(tmp_path, browser, start_lab):
    """A student's JupyterLab: the Validate button, nothing of nbgrader's teaching side, no pop-ups."""
    course = student_course(tmp_path / "student")
    lab = start_lab(course, edition_env(course))
    browser.open_lab(lab, f"assignments/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
    notebook_cells(browser, course / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    browser.wait(lambda d: [b for b in browser.css(".jp-NotebookPanel-toolbar .jp-Toolbar-item")
                            if b.is_displayed() and b.text.strip() == "Validate"], 30, "the Validate button")
    time.sleep(5)  # JupyterLab asks about news a few seconds after it loads, where it is allowed to
    browser.shot("edition-notebook")
    menus = [e.text for e in browser.css(".lm-MenuBar-item")]
    assert "File" in menus and "Nbgrader" not in menus, menus
    body = browser.driver.find_element(By.TAG_NAME, "body").text
    for tool in TEACHING_TOOLS:
        assert tool not in body, f"the edition shows {tool!r}"
    toasts = [t.text for t in browser.css(".Toastify__toast")]
    assert not toasts, f"pop-ups: {toasts}"

    # The command palette knows no teaching tool either.
    ActionChains(browser.driver).key_down(Keys.CONTROL).key_down(Keys.SHIFT).send_keys("c") \
        .key_up(Keys.SHIFT).key_up(Keys.CONTROL).perform()
    search = browser.wait(lambda d: [e for e in browser.css(".lm-CommandPalette-input") if e.is_displayed()],
                          10, "the command palette")[0]
    search.send_keys("nbgrader")
    time.sleep(1)
    browser.shot("edition-command-palette")
    found = [e.text for e in browser.css(".lm-CommandPalette-item") if e.is_displayed()]
    assert not [f for f in found if any(tool in f for tool in TEACHING_TOOLS)], found
    search.send_keys(Keys.ESCAPE)

    # Nor does the server: formgrader and the course list are not there.
    for path in ("formgrader", "formgraders"):
        try:
            with urllib.request.urlopen(f"{lab.url}/{path}?token={lab.token}", timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == 404, f"/{path} answers {status} in the student edition"


def _course_command(course: Course, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = _jupyter_env(home)
    started = time.monotonic()
    result = subprocess.run([str(BIN / "course"), *args], cwd=course.root, env=env,
                            capture_output=True, text=True, timeout=600)
    print(f"course {' '.join(args)}: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, f"course {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _lms_row(course: Course, student: str) -> dict[str, str]:
    with open(course.grades / "grades.csv", newline="") as f:
        return next(row for row in csv.DictReader(f) if row["student_id"] == student)


def _manual_grade(course: Course, student: str) -> tuple[float | None, str | None]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        grade = gb.find_grade("question_forget_bias", ASSIGNMENT, ASSIGNMENT, student)
        comment = gb.find_comment("question_forget_bias", ASSIGNMENT, ASSIGNMENT, student)
        return grade.manual_score, comment.manual_comment


def _needs_manual_grade(course: Course, student: str) -> bool:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        return gb.find_grade("question_forget_bias", ASSIGNMENT, ASSIGNMENT, student).needs_manual_grade


def test_ta_grades_a_written_answer_in_formgrader(repo_course, tmp_path, browser, start_lab):
    student, score, remark = "s0001", 1.5, "Right about the gradient; say why a bias of 1 keeps the cell open."
    course = scratch_course(repo_course, tmp_path / "course")
    incoming = tmp_path / "incoming" / student
    shutil.copytree(REPO / "examples" / "submissions" / ASSIGNMENT / "perfect", incoming)
    # Confined where bubblewrap works (CI installs it); a laptop without it grades unconfined, on purpose.
    unconfined = ["--unconfined"] if sandbox.detect().kind != "bubblewrap" else []
    _course_command(course, "grade", ASSIGNMENT, "--from", str(incoming.parent), *unconfined,
                    home=tmp_path / "ta")
    autograded = float(_lms_row(course, student)[ASSIGNMENT])
    assert _manual_grade(course, student) == (None, None)

    lab = start_lab(course.root)
    browser.open_lab(lab)
    browser.menu("Nbgrader", "Formgrader")
    frame = browser.wait(lambda d: [f for f in browser.css("iframe") if "formgrader" in (f.get_attribute("src") or "")],
                         30, "formgrader's frame")[0]
    driver = browser.driver
    driver.switch_to.frame(frame)
    browser.wait(lambda d: d.find_elements(By.LINK_TEXT, "Manual Grading"), 60, "formgrader to load")
    browser.shot("formgrader")
    landing = driver.find_element(By.TAG_NAME, "body").text
    assert not [e for e in EXCHANGE_ERRORS if e in landing], landing  # the TA's side too
    for link in ("Manual Grading", ASSIGNMENT, ASSIGNMENT):
        browser.wait(lambda d, link=link: d.find_elements(By.LINK_TEXT, link), 30, f"link {link}")[-1].click()
    submission = browser.wait(lambda d: d.find_elements(By.PARTIAL_LINK_TEXT, "Submission #1"), 30,
                              "the autograded submission")
    row = driver.find_element(By.CSS_SELECTOR, "tbody").text
    assert f"{autograded:g} / 33" in row, row
    browser.shot("submissions")
    submission[0].click()

    field = browser.wait(lambda d: d.find_elements(By.ID, "question_forget_bias"), 60, "the grading page")[0]
    # The page fills in the scores once it has them: the autograded one first.
    # formgrader shows an autograded score as the field's placeholder (the value is an override).
    browser.wait(lambda d: d.find_element(By.ID, "test_sigmoid").get_attribute("placeholder") == "2", 30,
                 "the autograded score of test_sigmoid")
    assert "needs_manual_grade" in field.get_attribute("class")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
    browser.shot("written-answer-before")
    field.click()
    field.clear()
    field.send_keys(f"{score:g}", Keys.TAB)
    box = driver.find_element(By.ID, "question_forget_bias-comment")
    box.click()
    box.send_keys(remark, Keys.TAB)

    deadline = time.monotonic() + 30
    while _manual_grade(course, student) != (score, remark) and time.monotonic() < deadline:
        time.sleep(0.5)
    browser.shot("written-answer-graded")
    assert _manual_grade(course, student) == (score, remark)

    # formgrader's own list shows the new total (breadcrumb: Manual Grading / lstm / lstm).
    driver.find_elements(By.LINK_TEXT, ASSIGNMENT)[-1].click()
    browser.wait(lambda d: f"{autograded + score:g} / 33" in d.find_element(By.TAG_NAME, "body").text,
                 30, "the new total in formgrader")
    browser.shot("submissions-after")
    driver.switch_to.default_content()

    # formgrader's Autograde button on the unchanged, hand-graded submission: the hand grade
    # stays resolved (nbgrader alone would mark the written answer for review again).
    driver.get(f"{lab.url}/formgrader/manage_submissions/{ASSIGNMENT}")
    button = browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "td.autograde a"), 60,
                          "formgrader's Autograde button")
    button[0].click()
    modal = browser.wait(lambda d: [m for m in d.find_elements(By.CSS_SELECTOR, ".modal")
                                    if m.is_displayed() and m.text.strip()], 400, "the autograde result")[0]
    browser.shot("autograde-again-result")
    assert f"Successfully autograded '{ASSIGNMENT}' for student '{student}'" in modal.text, modal.text
    driver.get(f"{lab.url}/formgrader/manage_submissions/{ASSIGNMENT}")
    browser.wait(lambda d: "/ 33" in d.find_element(By.CSS_SELECTOR, "tbody").text, 30, "the list")
    row = driver.find_element(By.CSS_SELECTOR, "tbody").text
    browser.shot("manage-submissions-after-autograde")
    assert f"{autograded + score:g} / 33" in row, row  # (other written answers still wait for a TA)
    assert _manual_grade(course, student) == (score, remark)
    assert not _needs_manual_grade(course, student)
    driver.get(f"{lab.url}/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}")
    browser.wait(lambda d: d.find_elements(By.PARTIAL_LINK_TEXT, "Submission #1"), 30, "the submission")[0].click()
    field = browser.wait(lambda d: d.find_elements(By.ID, "question_forget_bias"), 60, "the grading page")[0]
    browser.wait(lambda d: field.get_attribute("value") == f"{score:g}", 30, "the hand grade in its field")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
    browser.shot("written-answer-after-autograde")
    assert "needs_manual_grade" not in field.get_attribute("class"), field.get_attribute("class")

    _course_command(course, "grade", ASSIGNMENT, *unconfined, home=tmp_path / "ta")
    assert float(_lms_row(course, student)[ASSIGNMENT]) == autograded + score
    with open(course.grades / f"{ASSIGNMENT}_questions.csv", newline="") as f:
        questions = next(r for r in csv.DictReader(f) if r["student_id"] == student)
    assert float(questions["question_forget_bias"]) == score
    assert _manual_grade(course, student) == (score, remark)  # the regrade kept the hand grading
    (browser.artifacts / "grades.csv").write_text((course.grades / "grades.csv").read_text())
    (browser.artifacts / "gradebook.json").write_text(json.dumps(
        {"student": student, "manual_score": score, "comment": remark}))


def test_formgrader_autograde_button_runs_the_kernel_confined(tmp_path, browser, start_lab):
    """The TA's Autograde button grades with the student's kernel in bubblewrap, like course grade."""
    from nbfactory import tiny_course, tiny_submission
    from nbformat.v4 import new_code_cell
    from nbgrader.api import Gradebook
    from test_kernel_sandbox import PROBE, require_bubblewrap

    require_bubblewrap()
    course = tiny_course(tmp_path / "course")
    ta_home = tmp_path / "ta-home"
    ta_home.mkdir()
    secret = ta_home / ".ssh-like-secret"
    secret.write_text("ta-secret-" + secrets.token_hex(8))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        submission = tiny_submission(course)
        probe = new_code_cell(PROBE.format(secret=str(secret), gradebook=str(course.root / "gradebook.db"),
                                           port=listener.getsockname()[1]))
        probe.id = "probe"
        submission.cells.insert(1, probe)
        (course.submitted / "mallory" / "tiny").mkdir(parents=True)
        nbformat.write(submission, course.submitted / "mallory" / "tiny" / "tiny.ipynb")
        env = {**_jupyter_env(tmp_path / "ta"), "HOME": str(ta_home)}
        subprocess.run([str(BIN / "nbgrader"), "generate_assignment", "tiny", "--force"], cwd=course.root,
                       env=env, check=True, capture_output=True, timeout=300)

        lab = start_lab(course.root, {"HOME": str(ta_home)})
        browser.open_lab(lab)
        driver = browser.driver
        driver.get(f"{lab.url}/formgrader/manage_submissions/tiny")
        button = browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "td.autograde a"), 60,
                              "formgrader's Autograde button")
        browser.shot("manage-submissions")
        button[0].click()
        modal = browser.wait(lambda d: [m for m in d.find_elements(By.CSS_SELECTOR, ".modal")
                                        if m.is_displayed() and m.text.strip()], 240, "the autograde result")[0]
        browser.shot("autograde-result")
        assert "Successfully autograded 'tiny' for student 'mallory'" in modal.text, modal.text

    graded = nbformat.read(course.autograded / "mallory" / "tiny" / "tiny.ipynb", as_version=4)
    output = "".join(o.get("text", "") for c in graded.cells if c.get("id") == "probe" for o in c.outputs)
    assert "secret unreadable" in output and "ta-secret" not in output, output
    assert "gradebook visible: False" in output, output
    assert "network unreachable" in output, output
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        assert gb.find_submission("tiny", "mallory").code_score == 2


def test_manage_submissions_shows_an_ungradable_hand_in_as_not_graded(tmp_path, browser, start_lab):
    """A broken hand-in is visibly not graded in formgrader, with its reason; a late one says so;
    its student gets a feedback page that says what was wrong and what to do."""
    from nbfactory import tiny_course, tiny_submission
    from nbgrader.api import Gradebook

    course = tiny_course(tmp_path / "course")
    incoming = tmp_path / "incoming"
    for student, text, when in (("s101", nbformat.writes(tiny_submission(course)), "2026-03-14 09:00:00"),
                                ("s104", '{"cells": [', "2026-03-14 09:00:00"),
                                ("s107", nbformat.writes(tiny_submission(course)), "2026-03-16 12:00:00")):
        (incoming / student).mkdir(parents=True)
        (incoming / student / "tiny.ipynb").write_text(text)
        (incoming / student / "timestamp.txt").write_text(when + ".000000 UTC")
    unconfined = ["--unconfined"] if sandbox.detect().kind != "bubblewrap" else []
    ta = tmp_path / "ta"
    _course_command(course, "grade", "tiny", "--from", str(incoming), "--force", *unconfined, home=ta)
    import datetime

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:  # the due date, as a TA sets it
        gb.update_or_create_assignment("tiny", duedate=datetime.datetime(2026, 3, 15, 12, 0))
    feedback = (course.feedback / "s104" / "tiny" / "tiny.html").read_text()
    assert "could not be graded" in feedback and "not a valid notebook" in feedback, feedback

    lab = start_lab(course.root)
    browser.open_lab(lab)
    driver = browser.driver
    driver.get(f"{lab.url}/formgrader/manage_submissions/tiny")
    browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".dlcourse-not-graded"), 60,
                 "the ungradable hand-in marked")
    rows = {r.find_element(By.CSS_SELECTOR, "td.student-id").text: r.text
            for r in driver.find_elements(By.CSS_SELECTOR, "tbody tr")}
    browser.shot("manage-submissions-ungradable")
    assert "not graded" in rows["s104"] and "not a valid notebook" in rows["s104"], rows
    assert "not graded" not in rows["s101"] and "late" not in rows["s101"], rows  # its answer awaits a TA
    assert "late: 1.0 days" in rows["s107"] or "late: 24.0 h" in rows["s107"], rows
    (browser.artifacts / "feedback-s104.html").write_text(feedback)
    driver.get((course.feedback / "s104" / "tiny" / "tiny.html").as_uri())
    browser.shot("feedback-of-the-ungradable-hand-in")


PWNED = "document.title='pwned'"


def _hostile_notebook() -> nbformat.NotebookNode:
    """What `display(HTML(...))` and a written answer with raw HTML leave in a graded notebook."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    html = f'<script>{PWNED}</script><img src="x" onerror="{PWNED}"><table><tr><td>kept</td></tr></table>'
    nb = new_notebook(cells=[
        new_code_cell("display(HTML(...))", execution_count=1, outputs=[new_output(
            "display_data", data={"text/html": html, "text/plain": "<IPython.core.display.HTML object>"})]),
        new_markdown_cell(f"My answer.\n\n<script>{PWNED}</script>\n"),
    ])
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def _title_after_load(browser: Browser, page: Path) -> str:
    """The page's title once it has loaded and every image has loaded or failed (onerror has run)."""
    browser.driver.get(page.as_uri())
    browser.wait(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"),
        30, "the page and its images to load")
    time.sleep(0.5)  # handlers queued by the last image
    return browser.driver.title


def test_a_students_script_does_not_run_in_feedback_or_formgrader_pages(repo_course, tmp_path, browser):
    """A script in an output (or a written answer) runs in nbconvert's page as such; after the
    course's autograde step and with its exporter settings, neither feedback nor formgrader runs it."""
    import copy

    from nbconvert import HTMLExporter
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    from dlcourse.runner import nbgrader_api
    from dlcourse.runner.untrusted import InertNotebook

    def feedback_exporter(config):  # as `nbgrader generate_feedback` builds it
        converter = GenerateFeedback(coursedir=CourseDirectory(config=config), config=config)
        return converter.exporter_class(parent=converter, config=converter.config)

    def formgrader_exporter(config):  # as formgrader's extension builds it for a submission's page
        config.HTMLExporter.template_name = "formgrade"
        config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
        return HTMLExporter(config=config)

    resources = {"nbgrader": {"notebook": "lstm", "score": 0, "max_score": 2, "late_penalty": 0},
                 "assignment_id": "lstm", "notebook_id": "lstm", "submission_id": "1", "index": 0, "total": 1,
                 "base_url": "", "student": "mallory", "last_name": "M", "first_name": "M", "notebook_path": ""}
    inert, _ = InertNotebook().preprocess(_hostile_notebook(), {})
    pages = {
        "feedback-unsanitised": feedback_exporter(Config()).from_notebook_node(_hostile_notebook(), dict(resources)),
        "feedback": feedback_exporter(nbgrader_api.load_config(repo_course)).from_notebook_node(
            copy.deepcopy(inert), dict(resources)),
        "formgrader": formgrader_exporter(nbgrader_api.load_config(repo_course)).from_notebook_node(
            copy.deepcopy(inert), dict(resources)),
    }
    titles = {}
    for name, (html, _) in pages.items():
        page = browser.artifacts / f"{name}.html"
        page.write_text(html)
        titles[name] = _title_after_load(browser, page)
        browser.shot(name)
    assert titles["feedback-unsanitised"] == "pwned", "control: the unsanitised page must run the script"
    assert titles["feedback"] == "lstm" and titles["formgrader"] == "lstm", titles
    assert "kept" in browser.driver.find_element(By.TAG_NAME, "body").text  # the honest table still shows
