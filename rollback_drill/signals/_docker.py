"""What the Docker collectors share: Compose labels, the project filter, the client."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping
from typing import Any

import docker
import docker.errors
import requests.exceptions

from rollback_drill.errors import EnvironmentProblem

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"

DockerClient = Any
"""``docker.DockerClient`` (the SDK ships no type information)."""


def project_filter(project: str) -> dict[str, list[str]]:
    """Docker API filters selecting the containers of one Compose project."""
    return {"label": [f"{PROJECT_LABEL}={project}"]}


def service_of(labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(SERVICE_LABEL, "")


def docker_client() -> DockerClient:
    """The suite's one Docker client factory: a client, or :class:`EnvironmentProblem` in one
    line when no daemon answers.

    A unix socket is probed first with a socket closed here (docker-py leaks the socket of a
    failed connect, which a ``filterwarnings = error`` run turns into a failure), then the
    daemon is pinged by a client with a fixed API version: one negotiating its version fails
    inside its constructor and leaks its connection (a ResourceWarning)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            try:
                sock.connect(host.removeprefix("unix://"))
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise EnvironmentProblem(
                    f"Docker daemon not reachable at {host} ({reason})"
                ) from None
    try:
        with contextlib.closing(docker.from_env(version="1.24", timeout=30)) as probe:
            probe.ping()
        return docker.from_env(timeout=30)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise EnvironmentProblem(f"Docker daemon not reachable at {host} ({reason})") from None


def list_containers(client: DockerClient, filters: dict[str, Any]) -> list[Any]:
    """Every container (running or not) matching ``filters``. The SDK inspects each listed
    container in turn: one removed meanwhile (another run's cleanup) raises NotFound, so the
    listing is taken again."""
    for _ in range(4):
        try:
            return list(client.containers.list(all=True, filters=filters))
        except docker.errors.NotFound:
            continue
    return list(client.containers.list(all=True, filters=filters))


new_client = docker_client  # the collectors' name for it: each closes its own


def daemon_problem() -> str | None:
    """``None`` when a Docker daemon answers at ``DOCKER_HOST``, else why not, in one line."""
    try:
        docker_client().close()
    except EnvironmentProblem as exc:
        return str(exc)
    return None
