"""The host environment's three dependency files agree: pyproject.toml says what each group is
for (runtime, compose, locust, test, bench, lint), requirements.txt pins each of them, and
requirements.lock (``make lock-host``: what bootstrap installs) holds every pin at its version.
A pin edited without refreshing the lock fails here, not as a surprise on a fresh machine."""

from __future__ import annotations

import re
import tomllib

from paths import REPO_ROOT

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        specs += extra
    return {_norm(m.group(1)) for s in specs if (m := _NAME.match(s))}


def _pins(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip().rstrip("\\").strip()
        if "==" in line and (m := _NAME.match(line)):
            pins.setdefault(_norm(m.group(1)), line.split("==", 1)[1].strip())
    return pins


def test_every_declared_dependency_is_pinned_and_every_pin_declared() -> None:
    pinned = set(_pins((REPO_ROOT / "requirements.txt").read_text()))
    declared = _declared()
    assert declared - pinned == set(), "in pyproject.toml, not pinned in requirements.txt"
    assert pinned - declared == set(), "pinned in requirements.txt, in no pyproject.toml group"


def test_the_lock_holds_every_pin_at_its_version_with_hashes() -> None:
    lock_text = (REPO_ROOT / "requirements.lock").read_text()
    lock = _pins(lock_text)
    for name, version in _pins((REPO_ROOT / "requirements.txt").read_text()).items():
        assert lock.get(name) == version, f"{name}: {version} pinned, {lock.get(name)} locked"
    packages = len(re.findall(r"^[A-Za-z0-9].*==", lock_text, re.M))
    hashed = len(re.findall(r"==[^\n]*\\\n\s+--hash=sha256:", lock_text))
    assert packages == hashed, "every locked package carries its hashes (make lock-host)"
