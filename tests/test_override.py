"""The run's Compose override on a stack the suite did not write (rollback_drill.override)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from paths import REFERENCE_TARGET, REPO_ROOT

from rollback_drill.compose import Compose
from rollback_drill.override import OVERRIDE_FILE, OverrideParams, build_override, render
from rollback_drill.target import load_target
from rollback_drill.workspace import create_workspace

LABELS = {"io.rollback-drill": "1", "io.rollback-drill.run": "r1", "io.rollback-drill.pid": "7"}
EXAMPLE = REPO_ROOT / "examples" / "notes" / "target.yaml"

MESSY = {  # `docker compose config --format json` of a stack like the ones teams commit
    "services": {
        "proxy": {"image": "nginx:1.22", "container_name": "notes-proxy",
                  "ports": [{"target": 80, "published": "8080", "host_ip": ""},
                            {"target": 443, "published": "443"}]},
        "web": {"build": {"context": "."}, "container_name": "notes-web",
                "ports": [{"target": 8000, "published": "8000"}]},
        "worker": {"build": {"context": "."}, "ports": [{"target": 5555, "published": "5555"}]},
        "db": {"image": "postgres:15", "labels": dict(LABELS)},
    },
    "networks": {"default": {"name": "x_default"}, "shared": {"external": True}},
    "volumes": {"pgdata": {"name": "x_pgdata"}},
}  # fmt: skip


def params() -> OverrideParams:
    return OverrideParams(
        "rbd-r1", ["compose.yaml"], ".env", LABELS,
        {"proxy": [(80, 41000)], "web": [(8000, 0)], "db": [(5432, 41001)]},
        {"web": "512m"},
    )  # fmt: skip


def test_messy_stack_gets_labels_loopback_ports_and_no_container_names() -> None:
    out = build_override(MESSY, params())
    proxy, web, worker = (out["services"][n] for n in ("proxy", "web", "worker"))
    assert list(proxy["ports"]) == ["127.0.0.1:41000:80"]  # 443 on every interface: gone
    assert list(web["ports"]) == ["127.0.0.1::8000"] and web["mem_limit"] == "512m"
    assert list(worker["ports"]) == ["127.0.0.1::5555"]  # not a role: a random loopback port
    assert proxy["labels"] == LABELS and web["build"] == {"labels": LABELS}
    assert "container_name" in proxy and "container_name" not in worker
    assert "labels" not in out["services"]["db"]  # carries them already
    assert out["networks"] == {"default": {"labels": LABELS}}  # the external one is not ours
    assert out["volumes"] == {"pgdata": {"labels": LABELS}}
    text = render(out)
    assert "!override" in text and "!reset" in text and "&id" not in text  # no YAML anchors


def _compose_or_skip() -> None:
    if shutil.which("docker") is None:
        pytest.skip("needs the docker CLI with Compose v2 (`docker compose config`)")


@pytest.mark.parametrize("target_file", [REFERENCE_TARGET, EXAMPLE], ids=["reference", "example"])
def test_every_release_resolves_with_loopback_ports_only(target_file: Path, tmp_path: Path) -> None:
    """The override follows each checkout (the workspace's post-checkout hook), and Compose
    accepts it: every port on 127.0.0.1, no container_name, the run's labels everywhere."""
    _compose_or_skip()
    target = load_target(target_file)
    ws = create_workspace(target, run_id="ovr00001", base=tmp_path)
    try:
        compose = Compose(ws.project, ws.root, [*target.compose_files, OVERRIDE_FILE], ws.env_file)
        for release in (target.releases.previous, target.releases.next):
            ws.checkout(release)
            assert (ws.root / OVERRIDE_FILE).is_file()
            res = compose.run("config", "--format", "json")
            assert res.ok, res.tail(3)
            config = json.loads(res.stdout)
            for name, svc in config["services"].items():
                assert "container_name" not in svc, name
                assert svc["labels"]["io.rollback-drill.run"] == "ovr00001", name
                for port in svc.get("ports") or []:
                    assert port["host_ip"] == "127.0.0.1", (name, port)
            for kind in ("networks", "volumes"):
                for name, spec in (config.get(kind) or {}).items():
                    labels = spec.get("labels") or {}
                    assert labels.get("io.rollback-drill.run") == "ovr00001", (kind, name)
            services = set(config["services"])
            assert target.services.asgi in services or release == target.releases.previous
    finally:
        ws.remove()
