"""requirements*.txt and environment.yml pin the same versions of the same packages."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-]+)\s*(==|=)\s*([0-9][^\s;#]*)\s*(;[^#]*)?")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines) -> dict[tuple[str, str], str]:
    """(package, marker) -> version for every exact pin in the lines."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0] if not line.strip().startswith("- ") else line
        m = _PIN.match(line)
        if m and _normal(m.group(1)) != "python":
            marker = (m.group(4) or "").lstrip(";").strip()
            found[(_normal(m.group(1)), marker)] = m.group(3)
    return found


def requirement_pins() -> dict:
    lines = []
    for name in ("requirements.txt", "requirements-dev.txt"):
        lines += (REPO / name).read_text().splitlines()
    return pins(lines)


def conda_pins() -> dict:
    return pins(line for line in (REPO / "environment.yml").read_text().splitlines()
                if not line.lstrip().startswith("#"))


def test_every_requirement_is_exactly_pinned():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert "==" in line, f"{name}: {line!r} is not an exact pin"


def test_conda_and_pip_pin_the_same_versions():
    pip_side, conda_side = requirement_pins(), conda_pins()
    assert pip_side == conda_side, (
        f"only in requirements: {sorted(set(pip_side.items()) - set(conda_side.items()))}; "
        f"only in environment.yml: {sorted(set(conda_side.items()) - set(pip_side.items()))}"
    )


def test_core_versions_are_the_course_versions():
    pip_side = {name: version for (name, _), version in requirement_pins().items()}
    assert pip_side["tensorflow-cpu"].startswith("2.21.")
    assert pip_side["tensorflow"].startswith("2.21.")
    assert pip_side["keras"].startswith("3.15.")
    assert pip_side["nbgrader"] == "0.9.6"
    assert pip_side["nbval"].startswith("0.11.")
    assert pip_side["jupyterlab"].startswith("4.6.")
    assert pip_side["scikit-image"].startswith("0.26.")


def test_apple_silicon_gets_a_tensorflow_wheel():
    """tensorflow-cpu 2.21 exists for x86-64 Linux/Windows only; ARM machines take plain tensorflow."""
    from packaging.markers import Marker

    markers = {name: Marker(marker) for (name, marker), _ in requirement_pins().items()
               if name in {"tensorflow", "tensorflow-cpu"}}
    for env, wanted in [
        ({"sys_platform": "darwin", "platform_machine": "arm64"}, "tensorflow"),
        ({"sys_platform": "linux", "platform_machine": "x86_64"}, "tensorflow-cpu"),
        ({"sys_platform": "linux", "platform_machine": "aarch64"}, "tensorflow"),
        ({"sys_platform": "win32", "platform_machine": "AMD64"}, "tensorflow-cpu"),
    ]:
        chosen = [name for name, marker in markers.items() if marker.evaluate(env)]
        assert chosen == [wanted], f"{env}: installs {chosen}"
