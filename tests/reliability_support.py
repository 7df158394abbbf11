"""Helpers of the reliability tests: pytest runs of tiny drills in a subprocess, and what they
left in Docker.

A tiny drill lives in its own directory beside a copy of the project's ``pytest.ini`` and
``conftest.py`` (so the suite's plugins load) and runs with ``PYTHONPATH`` at the project, in a
session of its own (signals reach only it). Its run ids come from its journal. Whatever happens
to a test, :meth:`DrillProcess.close` kills what is left of that process group and removes the
Docker objects of *its* runs -- by their run label, never anything else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest

from rollback_drill.errors import EnvironmentProblem
from rollback_drill.preflight import check_compose
from rollback_drill.stack import RUN_LABEL, docker_client, sweep

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
PID_LABEL = "io.rollback-drill.pid"
DEBIAN = "rollback-drill/debian:bookworm"

T = TypeVar("T")


def _docker_problem() -> str:
    try:
        docker_client().close()
        check_compose()
    except EnvironmentProblem as exc:
        return str(exc)
    return ""


_PROBLEM = _docker_problem()
# the `docker` marker's promise: skipped with one line when there is no Docker (or Compose)
NEEDS_DOCKER = pytest.mark.skipif(bool(_PROBLEM), reason=f"needs Docker: {_PROBLEM}")


def child_env(**extra: str) -> dict[str, str]:
    """This environment minus pytest's own variables, with the project importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RBD_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def drill_dir(base: Path, source: str, name: str = "test_tiny_drill.py") -> Path:
    """A directory with the project's pytest.ini and conftest.py and one drill file."""
    work = base / "drill"
    work.mkdir(parents=True, exist_ok=True)
    ini = (ROOT / "pytest.ini").read_text().replace("testpaths = tests", "testpaths = .")
    ini = ini.replace("drill_target = targets/", f"drill_target = {ROOT}/targets/")
    (work / "pytest.ini").write_text(ini)
    shutil.copy(ROOT / "conftest.py", work / "conftest.py")
    (work / name).write_text(textwrap.dedent(source))
    return work


def poll(probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.2) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(interval_s)


class DrillProcess:
    """``pytest`` on a tiny drill (or the project's drills) in a process group of its own."""

    def __init__(
        self,
        cwd: Path,
        args: Iterable[str],
        *,
        env: dict[str, str] | None = None,
        out_dir: Path | None = None,
    ) -> None:
        self.cwd = cwd
        out_dir = out_dir or cwd
        self.report_dir = out_dir / "reports"
        self.log = out_dir / f"pytest-{time.monotonic_ns()}.log"
        self.started = time.time()
        cmd = [str(PYTHON), "-m", "pytest", "-p", "no:cacheprovider", "-q"]
        if (cwd / "pytest.ini").exists():
            cmd += ["-c", str(cwd / "pytest.ini"), f"--rootdir={cwd}"]
        cmd += [f"--drill-report-dir={self.report_dir}", *args]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env or child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        self._seen_runs: set[str] = set()

    # -- what it did -------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for path in sorted(self.report_dir.glob("*/journal.jsonl")):
            for line in path.read_text().splitlines():
                if line.endswith("}"):
                    out.append(json.loads(line))
        return out

    def run_ids(self) -> set[str]:
        """Run ids of the stacks this process created (their projects are ``rbd-<run id>``)."""
        for ev in self.events():
            project = ev.get("project")
            if isinstance(project, str) and project.startswith("rbd-"):
                self._seen_runs.add(project.removeprefix("rbd-"))
        return set(self._seen_runs)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_event(
        self, match: Callable[[dict[str, Any]], bool], timeout_s: float, what: str
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"pytest exited before {what}:\n{self.output()[-3000:]}")
            return next((e for e in self.events() if match(e)), None)

        return poll(probe, timeout_s, what)

    def wait_file(self, path: Path, timeout_s: float) -> str:
        def probe() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"pytest exited before {path}:\n{self.output()[-3000:]}")
            return path.read_text() if path.exists() and path.read_text() else None

        return poll(probe, timeout_s, f"{path} to be written")

    # -- its end -----------------------------------------------------------------------------
    def signal(self, sig: signal.Signals, *, group: bool = False) -> None:
        if group:
            os.killpg(self.pid, sig)
        else:
            os.kill(self.pid, sig)

    def finish(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"pytest still running after {timeout_s:.0f} s:\n{self.output()[-3000:]}"
            ) from None

    def close(self, client: docker.DockerClient) -> None:
        """Kill what is left of the process group; remove the objects of this process's runs."""
        if self.proc.poll() is None:
            with _suppress_lookup():
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        with _suppress_lookup():
            os.killpg(self.pid, signal.SIGKILL)  # children that outlived it
        for run in self.run_ids():
            sweep(client, f"{RUN_LABEL}={run}")
        for image in images_of_pid(client, self.pid, self.started):
            with _suppress_docker():
                client.images.remove(image.id, force=True)
        for run in self._seen_runs:
            for ws in workspaces_of(run):
                shutil.rmtree(ws, ignore_errors=True)


class _suppress_docker:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, tb: object) -> bool:
        return isinstance(value, docker.errors.NotFound | docker.errors.APIError)


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, tb: object) -> bool:
        return isinstance(value, ProcessLookupError | PermissionError)


def images_of_pid(client: docker.DockerClient, pid: int, since: float) -> list[Any]:
    """Images built by process ``pid`` (its label) since ``since`` (epoch seconds)."""
    images = client.images.list(all=True, filters={"label": f"{PID_LABEL}={pid}"})
    return [i for i in images if _created(i) >= since - 1]


def _created(image: Any) -> float:
    from datetime import datetime

    stamp = str(image.attrs.get("Created", ""))[:26].rstrip("Z")
    return datetime.fromisoformat(stamp + "+00:00").timestamp() if stamp else 0.0


def leftovers(
    client: docker.DockerClient, run_id: str, pid: int | None = None, since: float = 0.0
) -> list[str]:
    """Everything in Docker that belongs to run ``run_id`` (by its label or its Compose project
    name), and the images its process built (``io.rollback-drill.pid``: intermediate layers)."""
    project = f"rbd-{run_id}"
    by_label = {"label": f"{RUN_LABEL}={run_id}"}
    by_project = {"label": f"com.docker.compose.project={project}"}
    found: set[str] = set()
    for flt in (by_label, by_project):
        found |= {f"container {c.name}" for c in client.containers.list(all=True, filters=flt)}
        found |= {f"network {n.name}" for n in client.networks.list(filters=flt)}
        found |= {f"volume {v.name}" for v in client.volumes.list(filters=flt)}
    found |= {f"network {n.name}" for n in client.networks.list(names=[f"{project}_"])}
    found |= {f"volume {v.name}" for v in client.volumes.list(filters={"name": f"{project}_"})}
    images = client.images.list(all=True, filters=by_label)
    images += client.images.list(all=True, filters={"reference": f"{project}-*"})
    if pid is not None:
        images += images_of_pid(client, pid, since)
    found |= {f"image {i.short_id} {i.tags}" for i in images}
    return sorted(found)


def workspaces_of(run_id: str) -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"rbd-{run_id}-*"))
