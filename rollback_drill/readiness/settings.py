"""The services' own settings that break a rollback (or a drill of it): ports published beyond
loopback, fixed ``container_name``s, a restart policy on the ASGI role that Phase 1 stops, and
any of the plan's five roles without a health check."""

from __future__ import annotations

from typing import Any

from rollback_drill.readiness.findings import Finding, Review
from rollback_drill.readiness.release import Release, image_here, item_line, locate, services_of
from rollback_drill.target import Target


def _host_ip(port: Any) -> tuple[str, str]:
    """(host address, host port) of a ``docker compose config`` port entry."""
    if isinstance(port, dict):
        return str(port.get("host_ip") or ""), str(port.get("published") or "")
    return "", str(port)


def check_settings(rel: Release, review: Review, client: Any) -> None:
    for name, svc in services_of(rel).items():
        role = rel.role_of(name)
        for i, port in enumerate(svc.get("ports") or []):
            host, published = _host_ip(port)
            if host in ("127.0.0.1", "::1", "localhost"):
                continue
            fixed_wsgi = role == "wsgi" and published != ""
            review.add(
                Finding(
                    "error" if fixed_wsgi else "warning",
                    "port-all-interfaces",
                    *item_line(rel, ("services", name, "ports"), i),
                    f"service {name}: port {published or '(random)'}->"
                    f"{port.get('target') if isinstance(port, dict) else port} published on "
                    "every interface"
                    + (" with a fixed host port on the WSGI role" if fixed_wsgi else ""),
                    "Phase 2 step 3 (`up -d --scale` the WSGI role: one host port, one container)"
                    if fixed_wsgi
                    else "none of the plan's steps; a staging stack reachable from the network "
                    "(the drill's run replaces these ports by 127.0.0.1 ones)",
                    f'publish on loopback only ("127.0.0.1:{published}:...") or not at all',
                    (rel.name,),
                )
            )
        if svc.get("container_name"):
            scaled = role == "wsgi"
            review.add(
                Finding(
                    "error" if scaled else "warning",
                    "container-name",
                    *locate(rel, "services", name, "container_name"),
                    f"service {name}: fixed container_name {svc['container_name']}",
                    "Phase 2 step 3 (`up -d --scale` needs one name per container)"
                    if scaled
                    else "two projects of the stack cannot coexist (the drill's run resets "
                    "it with !reset; a staging and a drill stack on one host cannot)",
                    "remove container_name (Compose names containers <project>-<service>-N)",
                    (rel.name,),
                )
            )
        policy = str(svc.get("restart") or "no")
        if role == "asgi" and policy in ("always", "unless-stopped"):
            always = policy == "always"
            review.add(
                Finding(
                    "warning" if always else "info",
                    "restart-policy",
                    *locate(rel, "services", name, "restart"),
                    f"service {name} (ASGI role): restart: {policy}"
                    + (
                        " starts the ASGI container Phase 1 stopped again when the Docker "
                        "daemon or the host restarts"
                        if always
                        else " keeps Phase 1's stop across daemon restarts, but any "
                        "`docker-compose up -d` without a service list starts it again"
                    ),
                    "Phase 1 step 1 (docker-compose stop backend-asgi) and Phase 2 step 2",
                    "restart: unless-stopped, and scale the ASGI role to 0 (or remove it) "
                    "instead of only stopping it"
                    if always
                    else "after a rollback, scale the ASGI role to 0 or bring up named services",
                    (rel.name,),
                )
            )
        if role is not None and not _has_healthcheck(svc, client, rel.target):
            review.add(
                Finding(
                    "error",
                    "healthcheck",
                    *locate(rel, "services", name),
                    f"service {name} ({role} role) has no health check (neither in the "
                    "compose file nor in its image)",
                    "Rollback Validation Checklist 'All containers are healthy'; the drill's "
                    "stack up waits for every role to be healthy",
                    "add a healthcheck: to the service (a curl of its health path, pg_isready, "
                    "redis-cli ping)",
                    (rel.name,),
                )
            )


def _has_healthcheck(svc: dict[str, Any], client: Any, target: Target) -> bool:
    check = svc.get("healthcheck")
    if isinstance(check, dict):
        return not check.get("disable") and check.get("test") not in (None, [], ["NONE"])
    image = str(svc.get("image") or "")
    found = image_here(client, image) or image_here(client, target.images.get(image, ""))
    if client is None or found is None:
        return False
    test = (found.attrs.get("Config", {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test != ["NONE"]
