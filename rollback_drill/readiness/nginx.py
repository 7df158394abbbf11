"""A release's nginx configuration: ``limit_req`` zones slower than the drill's load from one
address, ``limit_conn`` below its concurrency, and ``nginx -t`` in a throwaway container of the
target's nginx image (the service's image, else its Dockerfile's base): no network, every
Compose service name resolvable through ``--add-host NAME:127.0.0.1``, the run's labels,
removed after."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollback_drill.readiness.findings import Finding, Review
from rollback_drill.readiness.release import Release, image_here, locate, services_of
from rollback_drill.workspace import LABEL, PID_LABEL, RUN_LABEL


@dataclass(frozen=True)
class _Directive:
    name: str
    args: tuple[str, ...]
    line: int


def _directives(text: str) -> Iterator[_Directive]:
    """nginx directives with their line (a tokenizer enough for ``limit_*``: quotes,
    comments, blocks)."""
    words: list[str] = []
    start = 0
    for m in re.finditer(
        r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|#[^\n]*|[{};]|[^\s{};"\'#]+', text
    ):
        tok = m.group(0)
        if tok.startswith("#"):
            continue
        if tok in ("{", "}", ";"):
            if words:
                yield _Directive(words[0], tuple(words[1:]), start)
            words = []
            continue
        if not words:
            start = text.count("\n", 0, m.start()) + 1
        words.append(tok.strip("\"'"))


def _rate(text: str) -> float | None:
    m = re.fullmatch(r"rate=(\d+(?:\.\d+)?)r/([sm])", text)
    if not m:
        return None
    return float(m.group(1)) / (60.0 if m.group(2) == "m" else 1.0)


def _conn_limit(d: _Directive) -> int:
    """``limit_conn ZONE N``'s N (a large number when it cannot be read)."""
    return int(d.args[1]) if len(d.args) >= 2 and d.args[1].isdigit() else 1 << 30


def conf_files(mounts: dict[str, Path]) -> list[Path]:
    """The config files of the mounts (a mounted directory: its ``*.conf``)."""
    files = {p for p in mounts.values() if p.is_file()}
    files |= {f for p in mounts.values() if p.is_dir() for f in p.rglob("*.conf")}
    return sorted(files)


def check_nginx_limits(
    rel: Release, paths: list[Path], review: Review, load_rate: float, concurrency: int
) -> None:
    found: list[tuple[Path, _Directive]] = []
    for path in paths:
        try:
            found += [(path, d) for d in _directives(path.read_text())]
        except (OSError, UnicodeDecodeError):
            continue
    # zones first: a zone is declared in http{} (often nginx.conf), used in a server's file
    zones: dict[str, tuple[str, float | None]] = {}
    for _, d in found:
        zone = next((a.split("=", 1)[1].split(":")[0] for a in d.args if a.startswith("zone=")), "")
        if d.name == "limit_req_zone":
            rate = next((r for a in d.args if (r := _rate(a)) is not None), None)
            zones[zone] = (d.args[0] if d.args else "", rate)
    for path, d in found:
        zone = next((a.split("=", 1)[1].split(":")[0] for a in d.args if a.startswith("zone=")), "")
        if d.name == "limit_req" and zone in zones:
            key, rate = zones[zone]
            if rate is not None and rate < load_rate:
                burst = next((a[6:] for a in d.args if a.startswith("burst=")), "0")
                review.add(
                    Finding(
                        "error",
                        "rate-limit",
                        rel.shown(path),
                        d.line,
                        f"limit_req zone={zone} allows {rate:g} r/s per {key} (burst {burst}); "
                        f"the drill's load sends {load_rate:g} r/s from one address",
                        "the drill's baseline and every trigger: nginx answers 503 to the "
                        "drill's own load, which reads as the app failing",
                        f"raise the zone's rate above {load_rate:g}r/s on the drill's stack "
                        "(or exempt 127.0.0.1/the Docker gateway with a geo/map key), or run "
                        "the drill with a lower --drill-load-rate",
                        (rel.name,),
                    )
                )
        elif d.name == "limit_conn" and _conn_limit(d) < concurrency:
            review.add(
                Finding(
                    "warning",
                    "connection-limit",
                    rel.shown(path),
                    d.line,
                    f"limit_conn {d.args[0]} {d.args[1]}: the drill's load keeps up to "
                    f"{concurrency} requests in flight from one address when the stack "
                    "slows down",
                    "the latency triggers: a slowed stack's answers turn into 503s",
                    f"raise the limit to at least {concurrency} for the drill's stack",
                    (rel.name,),
                )
            )


def nginx_mounts(rel: Release) -> dict[str, Path]:
    """Container path -> workspace file of the release's nginx configuration."""
    t = rel.target
    svc = services_of(rel).get(t.services.nginx) or {}
    mounts: dict[str, Path] = {}
    for volume in svc.get("volumes") or []:
        source = Path(str(volume.get("source", "")))
        if volume.get("type") == "bind" and source.exists():
            mounts[str(volume.get("target"))] = source
    release_conf = rel.ws.root / t.paths.nginx_release_conf
    if release_conf.is_file():
        mounts[t.paths.nginx_conf] = release_conf
    return mounts


def _host_file(mounts: dict[str, Path], in_container: str) -> Path | None:
    """The workspace file a container path of the nginx test is (a file or directory mount)."""
    for target, source in sorted(mounts.items(), key=lambda m: -len(m[0])):
        if in_container == target:
            return source
        if in_container.startswith(target.rstrip("/") + "/") and source.is_dir():
            return source / in_container[len(target.rstrip("/")) + 1 :]
    return None


def _nginx_image(rel: Release, client: Any) -> str | None:
    """A local image to test the release's nginx config in: the service's image (or its
    local stand-in), else the base image its Dockerfile builds FROM."""
    t = rel.target
    svc = services_of(rel).get(t.services.nginx) or {}
    names: list[str] = []
    if svc.get("image"):
        names.append(str(svc["image"]))
    build = svc.get("build")
    if isinstance(build, dict):
        dockerfile = Path(str(build.get("context", "."))) / str(
            build.get("dockerfile") or "Dockerfile"
        )
        try:
            froms = re.findall(r"(?im)^\s*FROM\s+(?:--\S+\s+)*(\S+)", dockerfile.read_text())
        except OSError:
            froms = []
        names += froms[-1:]
    for name in names:
        for candidate in (name, t.images.get(name, "")):
            if image_here(client, candidate) is not None:
                return candidate
    return None


def _hostnames(rel: Release) -> list[str]:
    names: set[str] = set()
    for name, svc in services_of(rel).items():
        names.add(name)
        if svc.get("container_name"):
            names.add(str(svc["container_name"]))
        for net in (svc.get("networks") or {}).values():
            names.update((net or {}).get("aliases") or [])
    return sorted(names)


def nginx_test_run(rel: Release, review: Review, client: Any) -> str:
    t, ws = rel.target, rel.ws
    mounts = nginx_mounts(rel)
    if t.paths.nginx_conf not in mounts:
        return f"{rel.name}: nginx -t not run ({t.paths.nginx_release_conf} is not in the release)"
    image = _nginx_image(rel, client)
    if image is None:
        review.add(
            Finding(
                "warning",
                "nginx-t",
                *locate(rel, "services", t.services.nginx),
                f"nginx -t not run: no local image for service {t.services.nginx}",
                "Phase 2 step 1 / Phase 3 step 5 (nginx -t && nginx -s reload)",
                "build or map the nginx image (target field 'images'), then review again",
                (rel.name,),
            )
        )
        return f"{rel.name}: nginx -t not run (no local image)"
    labels = {LABEL: "1", RUN_LABEL: ws.run_id, PID_LABEL: str(os.getpid())}
    container = client.containers.create(
        image,
        ["-t"],
        entrypoint=["nginx"],
        network_mode="none",
        extra_hosts={name: "127.0.0.1" for name in _hostnames(rel)},
        volumes={str(src): {"bind": dst, "mode": "ro"} for dst, src in mounts.items()},
        labels=labels,
    )
    try:
        container.start()
        status = container.wait(timeout=60).get("StatusCode", 1)
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    if status == 0:
        return f"{rel.name}: nginx -t passes in {image} ({len(mounts)} file(s))"
    said = [ln for ln in output.splitlines() if "[emerg]" in ln or "[crit]" in ln]
    said = said or [ln for ln in output.splitlines() if ln.strip()][-1:]
    for text in said:
        m = re.search(r" in (\S+):(\d+)", text)
        file, line = (_host_file(mounts, m.group(1)), int(m.group(2))) if m else (None, None)
        shown = rel.shown(file) if file else rel.shown(ws.root / t.paths.nginx_release_conf)
        review.add(
            Finding(
                "error",
                "nginx-t",
                shown,
                line if file else None,
                f"nginx -t fails: {text.split('] ', 1)[-1].strip()}",
                "Phase 2 step 1 and Phase 3 step 5 (the restored config must pass nginx -t)"
                if rel.name == t.releases.previous
                else "the deployment (its config is refused) and the rollback from it",
                "fix the config so that `nginx -t` passes in the nginx image",
                (rel.name,),
            )
        )
    return f"{rel.name}: nginx -t fails in {image}"


def nginx_mounted(rel: Release) -> bool:
    t = rel.target
    volumes = (services_of(rel).get(t.services.nginx) or {}).get("volumes") or []
    return any(v.get("type") == "bind" and v.get("target") == t.paths.nginx_conf for v in volumes)
