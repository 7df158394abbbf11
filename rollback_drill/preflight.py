"""Preflight: can a target's stack be brought up on this machine, before anything is changed.

Each check raises one :class:`~rollback_drill.errors.DrillError` line naming the cause:
the Docker daemon does not answer (:class:`EnvironmentProblem`), ``docker compose`` v2 is not
installed (:class:`ComposeMissing`), a host port the target's compose file pins is already
taken (:class:`PortInUse`). The reference stack publishes only random 127.0.0.1 ports, so only
a team's target that pins a port can collide; the check runs before the first build.
"""

from __future__ import annotations

import json
import socket

from rollback_drill.compose import Compose, run_command
from rollback_drill.errors import ComposeMissing, PortInUse, StackError

__all__ = ["check_compose", "check_pinned_ports", "pinned_ports"]


def check_compose() -> str:
    """The Compose v2 version, or :class:`ComposeMissing` in one line."""
    res = run_command(["docker", "compose", "version"], timeout=30)
    if res.returncode == 127:
        raise ComposeMissing("the docker CLI is not installed (no `docker` on PATH)")
    if not res.ok:
        said = [ln.strip() for ln in (res.stderr + "\n" + res.stdout).splitlines() if ln.strip()]
        first = said[0] if said else f"exit status {res.returncode}"
        raise ComposeMissing(
            f"docker compose (v2) is not installed: {first} "
            "(scripts/bootstrap.sh installs it as a Docker CLI plugin)"
        )
    return res.stdout.strip().removeprefix("Docker Compose version ")


def pinned_ports(compose: Compose) -> list[tuple[str, str, int]]:
    """(service, host address, host port) of every fixed host port the project publishes."""
    res = compose.run("config", "--format", "json", timeout=60)
    if not res.ok:
        raise StackError(f"docker compose config: {res.tail(1) or res.returncode}")
    pinned: list[tuple[str, str, int]] = []
    for name, service in sorted(json.loads(res.stdout).get("services", {}).items()):
        for port in service.get("ports") or []:
            published = str(port.get("published") or "")
            if published.isdigit() and int(published) > 0 and port.get("protocol") != "udp":
                pinned.append((name, str(port.get("host_ip") or "0.0.0.0"), int(published)))
    return pinned


def check_pinned_ports(compose: Compose) -> None:
    """Raise :class:`PortInUse` for the first pinned host port something already listens on."""
    for service, host, port in pinned_ports(compose):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise PortInUse(
                    f"service '{service}' publishes {host}:{port}, which is already in use on "
                    f"this machine ({exc.strerror}); free it or let Compose pick a port "
                    f"('{host}::<container port>')"
                ) from None
