"""The engine's stack layer on a stack the suite did not write: examples/notes/ (its own service,
env and endpoint names, fixed container names, ports on every interface, registry image names,
nginx config bind-mounted read-only) comes up from its target file alone -- images mapped to
local stand-ins, secrets generated, migrated, users created by its own command -- answers
through its own login flow, and leaves nothing behind."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from paths import REPO_ROOT

from rollback_drill.fixtures.stack import running_stack
from rollback_drill.journal import Journal
from rollback_drill.stack import RUN_LABEL, Stack, docker_client
from rollback_drill.target import Target, load_target

pytestmark = pytest.mark.docker

EXAMPLE = REPO_ROOT / "examples" / "notes" / "target.yaml"


@pytest.fixture(scope="module")
def example() -> Target:
    return load_target(EXAMPLE)


@pytest.fixture(scope="module")
def notes_stack(docker_available: None, example: Target) -> Iterator[Stack]:
    run = f"ex{uuid.uuid4().hex[:8]}"
    with running_stack(example, Journal(), run) as stack:
        yield stack
    client = docker_client()
    try:
        label = {"label": f"{RUN_LABEL}={run}"}
        left = [c.name for c in client.containers.list(all=True, filters=label)]
        left += [v.name for v in client.volumes.list(filters=label)]
        left += [n.name for n in client.networks.list(filters=label)]
        assert not left, f"left behind: {left}"
    finally:
        client.close()


def test_up_on_loopback_with_run_labels_and_no_fixed_names(notes_stack: Stack) -> None:
    containers = notes_stack.containers()
    services = {c.labels["com.docker.compose.service"] for c in containers}
    assert services == {"proxy", "web", "db", "cache"}
    for c in containers:
        assert not c.name.startswith("notes-"), f"{c.name}: the fixed container_name was kept"
        for bindings in (c.attrs["HostConfig"]["PortBindings"] or {}).values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings), (c.name, bindings)
    web = next(c for c in containers if c.labels["com.docker.compose.service"] == "web")
    assert web.attrs["HostConfig"]["Memory"] == 512 * 1024 * 1024  # the target's limit


def test_its_own_login_write_and_read_back(notes_stack: Stack) -> None:
    """The example's contract (examples/notes/README.md), spoken by hand: what the traffic
    profile of its target will say once the load takes profiles."""
    user = notes_stack.workspace.user
    with httpx.Client(base_url=notes_stack.base_url, timeout=10) as http:
        assert http.get(notes_stack.target.paths.health).status_code == 200
        form = http.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, form.text[:300]
        login = http.post(
            "/accounts/login/",
            data={
                "username": user.username,
                "password": user.password,
                "csrfmiddlewaretoken": token.group(1),
            },
        )
        assert login.status_code == 302, login.text[:300]
        assert http.get("/accounts/whoami/").json()["username"] == user.username
        ref = str(uuid.uuid4())
        wrote = http.post(
            "/v1/notes/",
            json={"ref": ref, "text": "drill"},
            headers={"X-CSRFToken": http.cookies["csrftoken"]},
        )
        assert wrote.status_code == 201 and wrote.json()["ref"] == ref, wrote.text[:300]
    with psycopg.connect(notes_stack.postgres_dsn(), connect_timeout=10) as conn:
        row = conn.execute("SELECT text FROM notes_note WHERE ref = %s", (ref,)).fetchone()
    assert row == ("drill",)
