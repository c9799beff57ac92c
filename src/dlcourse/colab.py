"""Setting up the course on Colab or any fresh runtime (student side).

A notebook opened on Colab arrives alone: no package, no data. Its first cell
(``SETUP_CELL``; `course publish` fills in the location the instructor set in
``edition.toml``) pip-installs the edition's package from that location and
then calls :func:`setup`, which makes the edition's data findable. Where the
course is already installed (the student's own JupyterLab, the instructor's
repository) both steps do nothing.

Locations: a local folder holding the edition, a local ``.zip`` of it, or an
``http(s)://`` URL of such a zip (what ``course publish DEST --zip`` writes; a
GitHub repository's archive URL works too).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

from dlcourse.data.paths import ENV_VAR, data_dir
from dlcourse.errors import CourseError

#: The notebooks' first cell. ``{location}`` is filled in by `course publish`.
SETUP_CELL = '''\
# Course setup for Colab and other fresh runtimes: installs the course package and data once.
# Elsewhere (your own JupyterLab with the course installed) it does nothing.
COURSE_EDITION = "{location}"  # set by course publish (edition.toml)
import importlib, importlib.util, subprocess, sys
if importlib.util.find_spec("dlcourse") is None:
    if not COURSE_EDITION:
        raise RuntimeError("COURSE_EDITION is empty: this course does not say yet where to install it from; tell your instructor")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", COURSE_EDITION], check=True)
    importlib.invalidate_caches()
import dlcourse.colab
dlcourse.colab.setup(COURSE_EDITION)'''
#: The line of SETUP_CELL that `course publish` rewrites.
LOCATION_PREFIX = "COURSE_EDITION = "
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlcourse"


def _has_data(folder: Path) -> bool:
    return (folder / "README.md").is_file() and any(folder.glob("*_train.npz"))


def _data_present() -> bool:
    try:
        return _has_data(data_dir())
    except CourseError:
        return False


def _unpack(archive: Path) -> Path:
    """Extract the data folder of an edition zip into the cache; return the data folder."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    target = CACHE / digest / "data"
    if _has_data(target):
        return target
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            # The edition's root is the zip's root or its one top-level folder (GitHub archives).
            roots = sorted((n[: -len("data/README.md")] for n in names if n.endswith("data/README.md")), key=len)
            if not roots or roots[0].count("/") > 1:
                raise CourseError(f"{archive} holds no data/ folder: is it a course edition?")
            prefix = roots[0] + "data/"
            shutil.rmtree(target, ignore_errors=True)
            for name in names:
                relative = name[len(prefix):]
                if not name.startswith(prefix) or name.endswith("/") or ".." in Path(relative).parts:
                    continue
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, open(target / relative, "wb") as out:
                    shutil.copyfileobj(src, out)
    except zipfile.BadZipFile:
        raise CourseError(f"{archive} is not a zip file") from None
    return target


def _download(url: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / ("edition-" + hashlib.sha256(url.encode()).hexdigest()[:16] + ".zip")
    if not path.is_file():
        try:
            with urllib.request.urlopen(url, timeout=120) as response, open(f"{path}.part", "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise CourseError(f"could not download the course edition from {url} ({exc})") from None
        os.replace(f"{path}.part", path)
    return path


def edition_data(location: str) -> Path:
    """The data folder of the edition at ``location`` (folder, zip file or zip URL)."""
    if not location:
        raise CourseError("no course edition location is set: ask your instructor for the course's "
                          "setup cell (COURSE_EDITION is empty)")
    if location.startswith(("http://", "https://")):
        return _unpack(_download(location))
    path = Path(location).expanduser()
    if path.is_dir():
        if not _has_data(path / "data"):
            raise CourseError(f"{path} has no data/ folder with the course data")
        return path / "data"
    if path.is_file():
        return _unpack(path)
    raise CourseError(f"course edition not found: {location}")


def setup(location: str) -> None:
    """Make the course data findable (``$DLCOURSE_DATA``) unless it already is.

    Returns nothing: the setup cell ends with this call, and a returned folder
    would be shown as the cell's output, an absolute path of whichever machine ran
    the notebook (a grader's, in every student's feedback). ``data_dir()`` says
    where the data is.
    """
    if _data_present():
        return
    os.environ[ENV_VAR] = str(edition_data(location))
