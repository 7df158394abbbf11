"""``rollback-drill up`` leaves the reference stack running and ready (health answers 200 on
the printed URL, credentials in a 0600 file and not on the terminal); ``cleanup`` spares it as
kept; ``rollback-drill down`` removes everything carrying its run label, and its workspace."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import httpx
import pytest
from paths import REPO_ROOT

from rollback_drill.cli import cleanup, main
from rollback_drill.stack import RUN_LABEL, docker_client

pytestmark = pytest.mark.docker

REFERENCE = REPO_ROOT / "targets" / "reference.yaml"


def leftovers(run: str) -> list[str]:
    client = docker_client()
    try:
        flt = {"label": f"{RUN_LABEL}={run}"}
        return [
            *(f"container {c.name}" for c in client.containers.list(all=True, filters=flt)),
            *(f"network {n.name}" for n in client.networks.list(filters=flt)),
            *(f"volume {v.name}" for v in client.volumes.list(filters=flt)),
            *(f"image {i.short_id}" for i in client.images.list(filters=flt)),
        ]
    finally:
        client.close()


def found(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    assert m is not None, f"{pattern!r} not in the output of up:\n{text}"
    return m.group(1)


def test_up_then_down(
    docker_available: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ""
    try:
        assert main(["up", "--target", str(REFERENCE), "--report-dir", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        run = found(r"rollback-drill down --run (\w+)", out)
        url = found(r"url: +(http://127\.0\.0\.1:\d+)", out)
        creds = Path(found(r"credentials: +(\S+)", out))
        assert httpx.get(url + "/api/health/", timeout=10).status_code == 200
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        secrets = dict(line.split("=", 1) for line in creds.read_text().splitlines() if "=" in line)
        assert secrets["DRILL_USER"] and secrets["DRILL_PASSWORD"].strip("'") not in out
        assert (tmp_path / "up" / run / "journal.jsonl").is_file()
        assert cleanup(only=[run]) == []  # kept: its process is gone, but it stays
        workspace = creds.parent.parent
        assert workspace.is_dir() and leftovers(run)
        assert main(["down", "--run", run]) == 0
        assert f"down: {run} removed" in capsys.readouterr().out
        assert leftovers(run) == []
        assert not workspace.exists()
        run = ""
    finally:
        if run:
            cleanup(all_runs=True, only=[run])
