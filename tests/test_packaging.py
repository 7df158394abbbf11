"""The suite as a team installs it: a wheel of this checkout in a fresh virtualenv, used from a
directory that is not this repository (the command, the plugin's entry point, the shipped drills).

The wheel is installed without its dependencies; the fresh environment borrows this checkout's
virtualenv's site-packages through a ``.pth`` file, so the test needs no network -- and finds
``rollback_drill`` only in the wheel (the checkout itself is never on its path).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from paths import REFERENCE_TARGET, REPO_ROOT


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, as ``pip wheel`` builds it."""
    wheels = tmp_path_factory.mktemp("wheels")
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(wheels),
            str(REPO_ROOT),
        ],
        wheels,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (found,) = wheels.glob("rollback_drill-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel of this checkout; returns its bin directory."""
    base = tmp_path_factory.mktemp("pkg")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False)
    site = next(env_dir.glob("lib/python3*/site-packages"))
    # the dependencies come from this checkout's environment, rollback_drill must not
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = _run(
        [sys.executable, "-m", "pip", "--python", str(env_dir / "bin/python"), "install", "-q",
         "--no-deps", "--no-index", str(wheel)],
        base,
    )  # fmt: skip
    assert inst.returncode == 0, inst.stderr[-2000:]
    return env_dir / "bin"


def test_the_wheel_ships_plugin_drills_checks_policy_and_scripts(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in (
        "rollback_drill/fixtures/__init__.py",
        "rollback_drill/checks/checklist.py",
        "rollback_drill/drills/test_whole_drills.py",
        "rollback_drill/drills/conftest.py",
        "rollback_drill/policy.yaml",
        "rollback_drill/drills.ini",
        "rollback_drill/scripts/rollback-config.sh",
        "rollback_drill/scripts/lib/checks.sh",
    ):
        assert member in names, f"{member} missing from {wheel.name}"
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"rollback_drill"}, f"top-level names besides rollback_drill: {tops}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]" in text and "rollback_drill.fixtures" in text, text


def test_command_and_plugin_work_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    team = tmp_path / "team-repo"
    team.mkdir()
    show = "import rollback_drill; print(rollback_drill.__file__)"
    where = _run([str(installed / "python"), "-c", show], team)
    assert where.returncode == 0, where.stderr
    assert not where.stdout.startswith(str(REPO_ROOT)), where.stdout

    helped = _run([str(installed / "rollback-drill"), "--help"], team)
    assert helped.returncode == 0 and "drill" in helped.stdout, helped.stderr

    checked = _run([str(installed / "rollback-drill"), "check-policy", "nope.yaml"], team)
    assert checked.returncode == 11 and "nope.yaml" in checked.stderr, checked.stderr

    options = _run([str(installed / "python"), "-m", "pytest", "--help"], team)
    assert "--drill-target" in options.stdout and "rollback drill suite" in options.stdout

    collected = _run(
        [str(installed / "rollback-drill"), "drill", "--target", str(REFERENCE_TARGET),
         "-m", "quick", "--collect-only", "-q"],
        team,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    assert "test_whole_drills.py::test_crash_looping_asgi_rolls_back_config_only" in (
        collected.stdout
    )
    assert "3/" in collected.stdout, collected.stdout[-500:]


def test_drills_without_a_target_say_so_in_one_line(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text("def test_a(drill_target):\n    pass\n")
    res = _run([str(installed / "python"), "-m", "pytest", "-q", "test_mine.py"], tmp_path)
    assert res.returncode != 0
    assert "no drill target: pass --drill-target PATH" in res.stdout + res.stderr
