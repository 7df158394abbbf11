"""The stack under drill: one Compose project, brought up by Testcontainers, torn down always.

Testcontainers' ``DockerCompose`` runs ``up --wait`` (Compose polls every service's health check)
and guarantees teardown when start fails (its ``__enter__`` calls ``__exit__``). Its teardown is
narrowed to the services it started, so :meth:`Stack.down` replaces it with a whole-project
``down --volumes --remove-orphans --rmi local`` and then sweeps anything else carrying this run's
label. Compose removes a built image without its parents -- with the classic builder, the
untagged intermediate images of every build step (one per ``--label`` too) -- so ``down`` then
removes those as well, the way ``docker rmi`` prunes: only images no tag, container or other
image still needs, which leaves shared base images and other runs' layers alone.
Operations later drills need (stop, start, kill, restart, scale, exec, logs, ps) are
thin, recorded ``docker compose`` calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import docker
import docker.errors
from testcontainers.compose import DockerCompose

from rollback_drill.compose import CommandResult, Compose
from rollback_drill.errors import StackError
from rollback_drill.journal import Journal
from rollback_drill.override import OVERRIDE_FILE, write_override
from rollback_drill.preflight import check_compose, check_pinned_ports
from rollback_drill.signals._docker import docker_client, list_containers
from rollback_drill.target import Target
from rollback_drill.wait import wait_for, wait_until
from rollback_drill.workspace import LABEL, PID_LABEL, RUN_LABEL, Workspace

__all__ = ["LABEL", "RUN_LABEL", "Stack", "docker_client", "sweep", "sweep_run"]


@dataclass
class _ProjectCompose(DockerCompose):
    """Testcontainers' DockerCompose with the run's explicit project name and whole-project down."""

    command: list[str] = field(default_factory=list)
    on_down: Any = None

    @cached_property
    def compose_command_property(self) -> list[str]:
        return list(self.command)

    def stop(self, down: bool = True) -> None:
        if self.on_down is not None:
            self.on_down()


class Stack:
    def __init__(self, target: Target, workspace: Workspace, journal: Journal) -> None:
        self.target = target
        self.workspace = workspace
        self.journal = journal
        self.project = workspace.project
        self.docker = docker_client()
        check_compose()
        write_override(workspace.root)  # then the post-checkout hook keeps it current
        self.compose = Compose(
            workspace.project,
            workspace.root,
            [*target.compose_files, OVERRIDE_FILE],
            workspace.env_file,
        )
        self._tc: _ProjectCompose | None = None
        self._ports: dict[tuple[str, int, int], int] = {}
        journal.redact(*workspace.secrets.all())

    # ---- lifecycle ------------------------------------------------------------------------
    def up(self, services: list[str], timeout_s: float = 180.0) -> None:
        """Build the release's images and bring ``services`` up healthy; on failure, tear down."""
        with self.journal.step("stack", "up", project=self.project, services=services) as step:
            check_pinned_ports(self.compose)  # before anything is built or created
            step.data["images_mapped"] = map_images(self.docker, self.target.images)
            self.compose.check("build", timeout=timeout_s * 3)
            self._tc = _ProjectCompose(
                context=str(self.workspace.root),
                services=services,
                wait=False,
                command=[*self.compose.base, "--progress=quiet"],
                on_down=self.down,
            )
            try:
                self._tc.__enter__()  # `up --detach`; on failure it tears the project down
            except Exception as exc:
                raise StackError(f"stack {self.project} did not start: {_cause(exc)}") from None
            try:
                self.wait_healthy(services, timeout_s)
            except BaseException:
                self.down()
                raise
            self._ports.clear()
            wait_until(
                lambda: self.http_ok(self.target.paths.health),
                timeout_s=timeout_s,
                what=f"{self.target.paths.health} through nginx to answer 200",
            )
            step.data["base_url"] = self.base_url

    def health(self) -> dict[str, str]:
        """Each running container's state: its health status, or its state when it has none."""
        return {row["Name"]: (row.get("Health") or row.get("State") or "?") for row in self.ps()}

    def wait_healthy(self, services: list[str], timeout_s: float = 180.0) -> None:
        """Poll ``docker compose ps`` until every container of ``services`` is healthy."""

        def states() -> dict[str, str]:
            return {
                f"{row['Service']}#{row.get('Name', '')}": row.get("Health")
                or row.get("State", "?")
                for row in self.ps()
                if row.get("Service") in services
            }

        def all_healthy(st: dict[str, str]) -> bool:
            seen = {key.split("#")[0] for key in st}
            return seen >= set(services) and all(v == "healthy" for v in st.values())

        wait_for(
            states,
            all_healthy,
            timeout_s=timeout_s,
            interval_s=0.5,
            what=f"services {', '.join(services)} of {self.project} to be healthy",
            hint="see `docker compose logs` of the unhealthy service",
        )

    def down(self) -> None:
        """Remove every container, network, volume and locally built image of this run.

        A Ctrl-C or SIGTERM arriving meanwhile waits until it is done (a second Ctrl-C would
        otherwise abandon the teardown half-way), and ``docker compose down`` runs in a
        session of its own, so a Ctrl-C sent to the terminal's process group does not kill it.
        """
        with (
            signals_deferred(f"taking down {self.project} first"),
            self.journal.step("stack", "down", project=self.project),
        ):
            cached = keep_build_cache(
                self.docker, self.workspace.run_id, self.project, self.target.name
            )
            if cached:
                self.journal.event("stack", "build cache kept", images=cached)
            parents = built_image_parents(self.docker, self.workspace.run_id, self.project)
            self.compose.run(
                "down",
                "--volumes",
                "--remove-orphans",
                "--rmi",
                "local",
                "--timeout",
                "5",
                timeout=180,
                own_session=True,
            )
            sweep_run(self.docker, self.workspace.run_id)
            prune_untagged(self.docker, parents)

    # ---- addresses ------------------------------------------------------------------------
    def port(self, service: str, container_port: int, index: int = 1) -> int:
        key = (service, container_port, index)
        if key not in self._ports:
            res = self.compose.check("port", "--index", str(index), service, str(container_port))
            host, _, port = res.stdout.strip().rpartition(":")
            if host not in ("127.0.0.1", "localhost"):
                raise StackError(
                    f"{service}:{container_port} is published on {host}, not 127.0.0.1"
                )
            self._ports[key] = int(port)
        return self._ports[key]

    def forget_ports(self) -> None:
        """Forget cached port lookups (after a container was recreated)."""
        self._ports.clear()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port(self.target.services.nginx, self.target.ports.nginx)}"

    def postgres_dsn(self) -> str:
        db = self.workspace.database
        port = self.port(self.target.services.postgres, self.target.ports.postgres)
        return f"postgresql://{db.user}:{db.password}@127.0.0.1:{port}/{db.name}"

    def redis_url(self) -> str:
        port = self.port(self.target.services.redis, self.target.ports.redis)
        return f"redis://127.0.0.1:{port}/0"

    def http_ok(self, path: str) -> bool:
        import httpx

        try:
            return httpx.get(self.base_url + path, timeout=3.0).status_code == 200
        except (httpx.HTTPError, StackError):
            return False

    # ---- operations -----------------------------------------------------------------------
    def stop(self, *services: str, timeout: int = 10) -> CommandResult:
        res = self.compose.check("stop", "--timeout", str(timeout), *services)
        self.forget_ports()  # a (re)started container gets a new random host port
        return res

    def start(self, *services: str) -> CommandResult:
        res = self.compose.check("start", *services)
        self.forget_ports()  # a (re)started container gets a new random host port
        return res

    def kill(self, *services: str, signal: str = "SIGKILL") -> CommandResult:
        res = self.compose.check("kill", "-s", signal, *services)
        self.forget_ports()  # a (re)started container gets a new random host port
        return res

    def restart(self, *services: str) -> CommandResult:
        res = self.compose.check("restart", *services)
        self.forget_ports()  # a (re)started container gets a new random host port
        return res

    def scale(self, service: str, replicas: int) -> CommandResult:
        res = self.compose.check(
            "up", "-d", "--wait", "--no-deps", "--scale", f"{service}={replicas}", service
        )
        self.forget_ports()
        return res

    def exec(
        self, service: str, *cmd: str, check: bool = True, timeout: float = 120
    ) -> CommandResult:
        args = ("exec", "-T", service, *cmd)
        return (
            self.compose.check(*args, timeout=timeout)
            if check
            else self.compose.run(*args, timeout=timeout)
        )

    def current_release(self) -> str:
        """The release checked out in the workspace: the tag of HEAD that names a release."""
        tags = self.workspace.git("tag", "--points-at", "HEAD").split()
        rel = self.target.releases
        for name in (rel.previous, rel.next, *rel.overlays):
            if name in tags:
                return name
        return tags[0] if tags else self.workspace.head()[:12]

    def logs(self, service: str, tail: int = 100) -> str:
        return self.compose.run("logs", "--no-color", "--tail", str(tail), service).stdout

    def ps(self) -> list[dict[str, Any]]:
        """``docker compose ps -a`` as records: Service, State, Health, ExitCode, Name..."""
        out = self.compose.check("ps", "-a", "--format", "json").stdout
        rows: list[dict[str, Any]] = []
        for line in out.splitlines():
            line = line.strip()
            if not line:
                continue
            data = json.loads(line)
            rows.extend(data if isinstance(data, list) else [data])
        return rows

    def containers(self, service: str | None = None) -> list[Any]:
        labels = [
            f"com.docker.compose.project={self.project}",
            f"{RUN_LABEL}={self.workspace.run_id}",
        ]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return list_containers(self.docker, {"label": labels})


@contextlib.contextmanager
def signals_deferred(doing: str, *, redeliver: bool = True) -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM while the block runs; yields the list of those received.

    On exit the previous handlers are back and, with ``redeliver``, the first signal held is
    raised again for them (a Ctrl-C still stops the run, once the block is done). Outside the
    main thread signals cannot be handled: then this does nothing.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum: int, frame: object) -> None:
        if not received:
            name = signal.Signals(signum).name
            os.write(2, f"\nrollback-drill: {name} received, {doing}\n".encode())
        received.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if redeliver and received:
            signal.raise_signal(received[0])


CACHE_REPOSITORY = "rollback-drill-cache"


def _of_a_run(labels: dict[str, str]) -> bool:
    """An image layer that names a run (its id or its process): the build's last steps."""
    return RUN_LABEL in labels or PID_LABEL in labels


def keep_build_cache(
    client: docker.DockerClient, run_id: str, project: str, target_name: str
) -> list[str]:
    """Keep what this run built as the next run's build cache.

    With the classic builder every Dockerfile step is an image and a later build reuses it; the
    run's labels come last, as ``LABEL`` steps, and the teardown removes the built image with
    its untagged parents -- so a team's heavy build (hundreds of packages) was rebuilt from
    scratch by every run. The newest ancestor of each built image that does not carry this run's
    or process label (all the Dockerfile's own steps, nothing of the run) is tagged
    ``rollback-drill-cache/<target>-<service>:latest``: the next run's build of the same steps
    finds it. The image it replaces is pruned when nothing else needs it;
    ``rollback-drill cleanup --images`` removes the cache. BuildKit images have no parent
    chain (and a cache of their own): nothing is tagged for them."""
    kept: list[str] = []
    for image in client.images.list(filters={"label": f"{RUN_LABEL}={run_id}"}):
        service = next(
            (
                t.split(":")[0].removeprefix(f"{project}-")
                for t in image.tags
                if t.startswith(f"{project}-")
            ),
            None,
        )
        ancestor: Any = image  # docker.models.images.Image, or None past the chain's end
        while ancestor is not None and _of_a_run(ancestor.labels or {}):
            parent = ancestor.attrs.get("Parent") or ""
            try:
                ancestor = client.images.get(parent) if parent else None
            except docker.errors.ImageNotFound:
                ancestor = None
        if service is None or ancestor is None:
            continue
        name = re.sub(r"[^a-z0-9_.-]+", "-", f"{target_name}-{service}".lower()).strip("-.")
        repository = f"{CACHE_REPOSITORY}/{name}"
        try:
            before = client.images.get(f"{repository}:latest").id
        except docker.errors.ImageNotFound:
            before = None
        ancestor.tag(repository, "latest")
        kept.append(f"{repository}:latest")
        if before and before != ancestor.id:
            prune_untagged(client, {before})
    return kept


def map_images(client: docker.DockerClient, images: dict[str, str]) -> list[str]:
    """Let a target's registry images resolve to local stand-ins where no registry answers:
    each registry name absent here is tagged onto its local image (a tag, not a new image:
    it stays for later runs, and ``rollback-drill cleanup --images`` removes it). Returns the
    names tagged; a local image that is missing too is a one-line :class:`StackError`."""
    tagged: list[str] = []
    for wanted, local in sorted(images.items()):
        try:
            client.images.get(wanted)
            continue
        except docker.errors.ImageNotFound:
            pass
        try:
            image = client.images.get(local)
        except docker.errors.ImageNotFound:
            raise StackError(
                f"image {wanted} is not here and neither is its stand-in {local} "
                "(target field 'images')"
            ) from None
        repository, _, tag = wanted.rpartition(":") if ":" in wanted else (wanted, "", "latest")
        image.tag(repository, tag or "latest")
        tagged.append(wanted)
    return tagged


def sweep_run(client: docker.DockerClient, run_id: str) -> list[str]:
    """Remove whatever still carries this run's label; returns what it removed."""
    return sweep(client, f"{RUN_LABEL}={run_id}")


def built_image_parents(client: docker.DockerClient, run_id: str, project: str) -> set[str]:
    """The parent images of the images this run built (its label, or Compose's
    ``<project>-<service>`` name): the intermediate images of the classic builder."""
    images = {i.id: i for i in client.images.list(filters={"label": f"{RUN_LABEL}={run_id}"})}
    for image in client.images.list(filters={"reference": f"{project}-*"}):
        images.setdefault(image.id, image)
    return {p for i in images.values() if (p := i.attrs.get("Parent") or "")} - set(images)


def prune_untagged(client: docker.DockerClient, image_ids: set[str]) -> list[str]:
    """Remove each untagged image of ``image_ids`` and, as ``docker rmi`` does, its untagged
    parents -- never forced: an image a container, a tag or another image uses is kept."""
    removed: list[str] = []
    for image_id in sorted(image_ids):
        try:
            if client.images.get(image_id).tags:
                continue
            client.images.remove(image_id, force=False, noprune=False)
            removed.append(f"image {image_id[7:19]}")
        except (docker.errors.NotFound, docker.errors.APIError):
            continue  # gone already, or still needed by someone: not ours to force
    return removed


def sweep(client: docker.DockerClient, label: str) -> list[str]:
    """Remove containers, networks, volumes and images carrying ``label`` (and only those)."""
    removed: list[str] = []
    flt: dict[str, str | list[str] | bool] = {"label": label}
    for c in list_containers(client, flt):
        with contextlib.suppress(docker.errors.NotFound):
            c.remove(force=True, v=True)
            removed.append(f"container {c.name}")
    for n in client.networks.list(filters=flt):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            n.remove()
            removed.append(f"network {n.name}")
    for v in client.volumes.list(filters=flt):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            v.remove(force=True)
            removed.append(f"volume {v.name}")
    for i in client.images.list(filters=flt):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.images.remove(i.id or i.short_id, force=True)
            removed.append(f"image {i.short_id}")
    return removed


def _cause(exc: BaseException) -> str:
    stderr = getattr(exc, "stderr", None)
    if isinstance(stderr, bytes):
        lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1].strip()[:300]
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
