"""What the Docker collectors share: Compose labels, the project filter, the client."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from typing import Any

import docker

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"

DockerClient = Any
"""``docker.DockerClient`` (the SDK ships no type information)."""


def project_filter(project: str) -> dict[str, list[str]]:
    """Docker API filters selecting the containers of one Compose project."""
    return {"label": [f"{PROJECT_LABEL}={project}"]}


def service_of(labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(SERVICE_LABEL, "")


def new_client() -> DockerClient:
    """A client from the environment (``DOCKER_HOST``...), the collector's to close."""
    return docker.from_env()


def daemon_problem(timeout: float = 5.0) -> str | None:
    """``None`` when a Docker daemon answers at ``DOCKER_HOST``, else why not, in one line.

    A unix socket is probed first with a socket closed here: the SDK leaks the socket of a
    failed connection, which a ``filterwarnings = error`` test run turns into a failure.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(timeout)
                probe.connect(host.removeprefix("unix://"))
        except OSError as exc:
            return f"no Docker daemon answers at {host}: {exc.strerror or exc}"
    try:
        client = docker.from_env(timeout=math.ceil(timeout))
    except Exception as exc:
        return f"no Docker daemon answers at {host}: {type(exc).__name__}"
    try:
        client.ping()
    except Exception as exc:
        return f"no Docker daemon answers at {host}: {type(exc).__name__}"
    finally:
        client.close()
    return None
