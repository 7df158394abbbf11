"""Releases as git refs, end to end: a team's repository (tests/team_repo.py: examples/notes
committed as tag v1, its v2 as tag v2, under a subdirectory) brings its previous release up
from the ref alone, deploys the next one -- built with its own Dockerfiles from the workspace --
and the team's repository is the same afterwards, files, index and refs.

Nightly: 102 to 274 s measured on two shared cores (the notes stack's start, then v2's build,
migration and rolling update); tests/test_workspace.py proves the same releases without Docker."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from team_repo import make_team_repo, snapshot, write_target

from rollback_drill.deploy import deploy_release
from rollback_drill.fixtures.stack import running_stack
from rollback_drill.journal import Journal
from rollback_drill.stack import RUN_LABEL, docker_client
from rollback_drill.target import load_target

pytestmark = [pytest.mark.docker, pytest.mark.nightly]

_COLOR = (
    "SELECT count(*) FROM information_schema.columns "
    "WHERE table_name = 'notes_note' AND column_name = 'color'"
)


def test_previous_ref_comes_up_and_the_next_ref_deploys(
    docker_available: None, tmp_path: Path
) -> None:
    team = make_team_repo(tmp_path)
    target = load_target(write_target(team))
    before = snapshot(team)
    run = f"gr{uuid.uuid4().hex[:8]}"
    with running_stack(target, Journal(), run) as stack:
        assert stack.current_release() == "v1"
        services = {c.labels["com.docker.compose.service"] for c in stack.containers()}
        assert "live" not in services  # v1 has no ASGI service yet
        with psycopg.connect(stack.postgres_dsn(), connect_timeout=10) as conn:
            assert conn.execute(_COLOR).fetchone() == (0,)
        deploy_release(stack, "v2")
        assert stack.current_release() == "v2"
        assert stack.workspace.head() == stack.workspace.commits["v2"]
        services = {c.labels["com.docker.compose.service"] for c in stack.containers()}
        assert {"proxy", "web", "live", "db", "cache"} <= services
        with psycopg.connect(stack.postgres_dsn(), connect_timeout=10) as conn:
            assert conn.execute(_COLOR).fetchone() == (1,)  # v2's migration ran
        with httpx.Client(base_url=stack.base_url, timeout=10) as http:
            assert http.get(target.paths.health).status_code == 200
    assert snapshot(team) == before
    client = docker_client()
    try:
        label = {"label": f"{RUN_LABEL}={run}"}
        left = [c.name for c in client.containers.list(all=True, filters=label)]
        left += [v.name for v in client.volumes.list(filters=label)]
        left += [n.name for n in client.networks.list(filters=label)]
        assert not left, f"left behind: {left}"
    finally:
        client.close()
