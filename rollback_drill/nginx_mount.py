"""nginx configurations that are bind-mounted files of the team's repository.

Many teams mount their site config read-only from the repository
(``./deploy/nginx/default.conf:/etc/nginx/conf.d/default.conf:ro``): copying a file inside the
container cannot work there, and a file bind mount follows the *inode* it was made with -- a
``git checkout`` that replaces the file leaves the running container serving the old one.
So, for such a target (found in ``docker compose config``: a bind mount onto the target's
``paths.nginx_conf``):

- a candidate config is tested with ``nginx -t`` in a throwaway container of the nginx service
  (same image, same mounts, the candidate mounted over the config path, on the project's
  networks so upstream names resolve) before anything changes;
- it is installed by writing it into the repository file *in place* (the inode the container
  sees keeps it) and reloading; when the running container still serves another inode (a
  checkout replaced the file), the nginx container is recreated instead;
- the backup of it is a host file in the workspace's state directory, out of the tree a
  checkout rewrites and not lost with a recreated container.

A config that fails ``nginx -t`` is never written and never loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from rollback_drill.compose import CommandResult
from rollback_drill.errors import StackError
from rollback_drill.nginx_control import reload_nginx
from rollback_drill.stack import Stack

__all__ = ["backup_path", "install", "mount_source", "test_config"]


def mount_source(stack: Stack) -> Path | None:
    """The host file bind-mounted onto the nginx config path, or None (a config in the image)."""
    t = stack.target
    res = stack.compose.run("config", "--format", "json", timeout=60)
    if not res.ok:
        raise StackError(f"docker compose config: {res.tail(1)}")
    service = json.loads(res.stdout).get("services", {}).get(t.services.nginx, {})
    for volume in service.get("volumes") or []:
        if volume.get("type") == "bind" and volume.get("target") == t.paths.nginx_conf:
            return Path(volume["source"])
    return None


def backup_path(stack: Stack) -> Path:
    """Where the backup of a bind-mounted config lives (the run's state directory)."""
    name = Path(stack.target.paths.nginx_conf_backup).name
    path = stack.workspace.state_dir / "nginx" / name
    path.parent.mkdir(exist_ok=True)
    return path


def test_config(stack: Stack, candidate: Path) -> CommandResult:
    """``nginx -t`` of the nginx service's configuration with ``candidate`` as its config file,
    in a throwaway container (never raises; the result says)."""
    t = stack.target
    return stack.compose.run(
        "run",
        "--rm",
        "--no-deps",
        "-T",
        "-v",
        f"{candidate}:{t.paths.nginx_conf}:ro",
        "--entrypoint",
        "nginx",
        t.services.nginx,
        "-t",
        timeout=120,
    )


def install(stack: Stack, source: Path, candidate: Path) -> str:
    """Make ``candidate``'s content the live config mounted from ``source``; returns how
    (``reloaded`` or ``recreated``). The candidate must have passed :func:`test_config`."""

    t = stack.target
    text = candidate.read_bytes()
    if candidate.resolve() != source.resolve():
        with source.open("r+b") as handle:  # in place: the container's inode sees it
            handle.truncate(0)
            handle.write(text)
    served = stack.exec(t.services.nginx, "cat", t.paths.nginx_conf, check=False)
    if served.ok and served.stdout.encode() == text:
        reload_nginx(stack, drain=False)
        return "reloaded"
    stack.compose.check(
        "up", "-d", "--no-deps", "--force-recreate", "--wait", t.services.nginx, timeout=180
    )
    stack.forget_ports()
    return "recreated"
