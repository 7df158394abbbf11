"""Bad input: one clear line naming the cause, a distinct exit status, nothing half-done.

Through the command line (``rollback-drill check-policy|check-target|cleanup``, exit statuses
from :mod:`rollback_drill.errors`) and through a drill run (the fixture's set-up error is one
line, and the run created nothing in Docker). A missing or corrupt backup, an nginx config
failing ``nginx -t`` and a rollback while another holds the lock are drilled in
``drills/test_rollback_guards.py`` (and ``tests/test_backup.py``, ``tests/test_lock.py``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from reliability_support import (
    NEEDS_DOCKER,
    PYTHON,
    ROOT,
    DrillProcess,
    child_env,
    drill_dir,
)

from rollback_drill.errors import (
    ComposeMissing,
    EnvironmentProblem,
    PolicyError,
    PortInUse,
    TargetError,
)

REFERENCE = ROOT / "targets" / "reference.yaml"
POLICY = ROOT / "rollback_drill" / "policy.yaml"
NO_DOCKER = "unix:///nonexistent.sock"
DAEMON_DOWN = f"Docker daemon not reachable at {NO_DOCKER} (No such file or directory)"


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "-m", "rollback_drill.cli", *args],
        capture_output=True,
        text=True,
        env=child_env(**env),
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("rollback-drill: "), lines
    return lines[0]


# -- policy ---------------------------------------------------------------------------------


def _policy(tmp_path: Path, edit: str = "", text: str | None = None) -> Path:
    data = yaml.safe_load(POLICY.read_text())
    if edit == "contradictory":  # the 5-10 % band reaches into the > 10 % immediate rollback
        row = next(r for r in data["matrix"] if r["id"] == "error_rate_evaluate")
        row["condition"]["upper"] = 0.12
    elif edit == "unknown-metric":
        data["triggers"][0]["metric"] = "error_rate_typo"
    elif edit == "unknown-trigger":
        row = next(r for r in data["matrix"] if r["id"] == "matrix_auth_failures")
        row["same_as"] = "auth_failure"
    path = tmp_path / "policy.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("edit", "text", "expected"),
    [
        ("", "version: 1\ntriggers: [\n", "line 3, column 1: invalid YAML: "),
        ("contradictory", None, "entry 'error_rate_evaluate': field 'condition': overlaps "),
        ("unknown-metric", None, "field 'metric': 'error_rate_typo' is not one of "),
        ("unknown-trigger", None, "field 'same_as': no trigger 'auth_failure'"),
    ],
    ids=["malformed", "contradictory", "unknown-metric", "unknown-trigger"],
)
def test_bad_policy(tmp_path: Path, edit: str, text: str | None, expected: str) -> None:
    path = _policy(tmp_path, edit, text)
    res = cli("check-policy", str(path))
    assert res.returncode == PolicyError.exit_code == 11
    assert one_line(res).startswith(f"rollback-drill: {path}: ")
    assert expected in res.stderr
    assert res.stdout == ""


def test_the_shipped_policy_checks_out() -> None:
    res = cli("check-policy", str(POLICY))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{POLICY}: ok (14 triggers")


# -- target ---------------------------------------------------------------------------------


def _target(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(REFERENCE.read_text())
    data["project_dir"] = str(ROOT / "compose")
    data.update(changes)
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_missing_compose_file(tmp_path: Path) -> None:
    path = _target(tmp_path, compose_files=["docker-compose.yml", "docker-compose.prod.yml"])
    res = cli("check-target", str(path))
    assert res.returncode == TargetError.exit_code == 12
    missing = ROOT / "compose" / "docker-compose.prod.yml"
    assert one_line(res) == f"rollback-drill: {path}: compose file {missing} not found"


def test_missing_target_file(tmp_path: Path) -> None:
    res = cli("check-target", str(tmp_path / "nope.yaml"))
    assert res.returncode == 12
    assert one_line(res) == f"rollback-drill: {tmp_path / 'nope.yaml'}: target file not found"


# -- the machine ----------------------------------------------------------------------------


@pytest.mark.docker
@NEEDS_DOCKER
def test_the_reference_target_checks_out() -> None:
    res = cli("check-target", str(REFERENCE))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == f"{REFERENCE}: ok"


def test_docker_daemon_down() -> None:
    res = cli("check-target", str(REFERENCE), DOCKER_HOST=NO_DOCKER)
    assert res.returncode == EnvironmentProblem.exit_code == 13
    assert one_line(res) == f"rollback-drill: {DAEMON_DOWN}"
    res = cli("cleanup", "--run", "nothing", DOCKER_HOST=NO_DOCKER)
    assert res.returncode == 13
    assert one_line(res) == f"rollback-drill: {DAEMON_DOWN}"


@pytest.fixture
def no_compose(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``docker compose`` is honestly missing: the Docker CLI's config
    directory (where the plugin lives here) is an empty one. Where a system plugin directory
    also has it, a ``docker`` on PATH that has no ``compose`` stands in for the bare CLI."""
    config = tmp_path / "docker-config"
    config.mkdir()
    env = {"DOCKER_CONFIG": str(config)}
    probe = subprocess.run(
        ["docker", "compose", "version"], env=child_env(**env), capture_output=True, check=False
    )
    if probe.returncode == 0:
        shim = tmp_path / "bin"
        shim.mkdir()
        real = shutil.which("docker")
        (shim / "docker").write_text(
            "#!/bin/sh\n"
            '[ "$1" = compose ] && { echo "docker: unknown command: docker compose" >&2; '
            "exit 1; }\n"
            f'exec {real} "$@"\n'
        )
        (shim / "docker").chmod(0o755)
        env["PATH"] = f"{shim}:{child_env()['PATH']}"
    return env


@pytest.mark.docker
@NEEDS_DOCKER
def test_compose_missing(no_compose: dict[str, str]) -> None:
    res = cli("check-target", str(REFERENCE), **no_compose)
    assert res.returncode == ComposeMissing.exit_code == 19
    assert one_line(res) == (
        "rollback-drill: docker compose (v2) is not installed: docker: unknown command: "
        "docker compose (scripts/bootstrap.sh installs it as a Docker CLI plugin)"
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _pinned_target(tmp_path: Path, port: int) -> Path:
    """The reference target, but its nginx published on a fixed 127.0.0.1 port."""
    compose = tmp_path / "compose"
    shutil.copytree(ROOT / "compose", compose, ignore=shutil.ignore_patterns("__pycache__"))
    text = (compose / "docker-compose.yml").read_text()
    line = '      - "127.0.0.1:${RBD_NGINX_HOST_PORT:-}:80"\n'
    assert line in text
    text = text.replace(line, f'      - "127.0.0.1:{port}:80"\n')
    (compose / "docker-compose.yml").write_text(text)
    data = yaml.safe_load(REFERENCE.read_text())
    data["project_dir"] = str(compose)
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.docker
@NEEDS_DOCKER
def test_a_port_the_compose_file_pins_never_binds(tmp_path: Path, busy_port: int) -> None:
    """A team's file that publishes a fixed port (here one in use) does not collide: the
    run's override replaces every published port with a loopback one of its own."""
    res = cli("check-target", str(_pinned_target(tmp_path, busy_port)))
    assert res.returncode == 0, res.stderr
    assert "no host port it pins is in use" in res.stdout


def test_exit_statuses_are_distinct() -> None:
    from rollback_drill import errors

    codes = [
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.DrillError)
    ]
    assert len(codes) == len(set(codes)) and 0 not in codes and 1 not in codes


# -- the same causes, met by a drill run ----------------------------------------------------

NEEDS_STACK = """
def test_needs_a_stack(fresh_stack):
    pass
"""
NEEDS_POLICY = """
def test_needs_the_policy(drill_policy):
    pass
"""


def _drill(tmp_path: Path, source: str, *args: str, **env: str) -> tuple[DrillProcess, str]:
    proc = DrillProcess(drill_dir(tmp_path, source), args, env=child_env(**env))
    proc.finish(180)
    return proc, proc.output()


def _setup_error(out: str, test: str) -> str:
    """The text pytest shows for a set-up error: must be one line (then the captured output)."""
    lines = out.split(f"ERROR at setup of {test}")[1].splitlines()[1:]
    assert lines[1].startswith(("---", "===")), out[-2000:]
    return lines[0]


def test_drill_with_bad_policy(tmp_path: Path) -> None:
    path = _policy(tmp_path, "unknown-metric")
    proc, out = _drill(tmp_path, NEEDS_POLICY, f"--drill-policy={path}")
    assert proc.proc.returncode == 1, out
    line = _setup_error(out, "test_needs_the_policy")
    assert line.startswith(f"PolicyError: {path}: entry 'error_rate': field 'metric': "), line


@pytest.mark.docker
@NEEDS_DOCKER
def test_drill_with_missing_compose_file(tmp_path: Path) -> None:
    path = _target(tmp_path, compose_files=["docker-compose.prod.yml"])
    proc, out = _drill(tmp_path, NEEDS_STACK, f"--drill-target={path}", "--drill-require-docker")
    assert proc.proc.returncode == 1, out
    line = _setup_error(out, "test_needs_a_stack")
    assert line.startswith(f"TargetError: {path}: compose file "), line
    assert line.endswith("docker-compose.prod.yml not found"), line


def test_drill_without_docker(tmp_path: Path) -> None:
    proc, out = _drill(tmp_path, NEEDS_STACK, DOCKER_HOST=NO_DOCKER)
    assert proc.proc.returncode == 0, out  # skipped, with the reason in one line
    assert (
        "SKIPPED [1] test_tiny_drill.py:2: drill needs Docker: Docker daemon not reachable" in out
    )
    proc, out = _drill(tmp_path, NEEDS_STACK, "--drill-require-docker", DOCKER_HOST=NO_DOCKER)
    assert proc.proc.returncode == 1, out
    line = _setup_error(out, "test_needs_a_stack")
    assert line == f"drill needs Docker: {DAEMON_DOWN}", line


@pytest.mark.docker
@NEEDS_DOCKER
def test_drill_without_compose(tmp_path: Path, no_compose: dict[str, str]) -> None:
    proc, out = _drill(tmp_path, NEEDS_STACK, "--drill-require-docker", **no_compose)
    assert proc.proc.returncode == 1, out
    line = _setup_error(out, "test_needs_a_stack")
    assert line.startswith("drill needs Docker: docker compose (v2) is not installed: "), line


@pytest.mark.docker
@NEEDS_DOCKER
def test_the_runs_pinned_port_taken_refuses_before_anything_is_built() -> None:
    """The host ports a run pins (nginx, PostgreSQL, Redis) were free when its workspace was
    made; one taken since makes ``up`` refuse in one line, before the first build."""
    import docker

    from rollback_drill.journal import Journal
    from rollback_drill.stack import Stack
    from rollback_drill.target import load_target
    from rollback_drill.workspace import create_workspace

    target = load_target(REFERENCE)
    workspace = create_workspace(target)
    journal = Journal()
    try:
        env = dict(line.split("=", 1) for line in workspace.env_file.read_text().splitlines())
        port = int(env["RBD_NGINX_HOST_PORT"])
        stack = Stack(target, workspace, journal)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            with pytest.raises(PortInUse) as caught:
                stack.up([target.services.nginx])
        assert str(caught.value).startswith(
            f"service 'nginx' publishes 127.0.0.1:{port}, which is already in use"
        ), caught.value
        steps = [(e.kind, e.name, e.data.get("status")) for e in journal.events]
        assert ("stack", "up", "failed") in steps
        assert not [e for e in journal.events if e.kind == "compose" and "build" in e.name]
        client = docker.from_env()
        try:
            label = {"label": f"io.rollback-drill.run={workspace.run_id}"}
            assert client.containers.list(all=True, filters=label) == []
            assert client.images.list(filters=label) == []
        finally:
            client.close()
    finally:
        workspace.remove()
