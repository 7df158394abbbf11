from __future__ import annotations

from pathlib import Path

from rollback_drill.compose import Compose, run_command


def test_run_command_records_status_duration_and_tail() -> None:
    res = run_command(["sh", "-c", "for i in 1 2 3; do echo line$i; done; echo err >&2; exit 3"])
    assert res.returncode == 3 and not res.ok and res.duration_s >= 0
    assert res.tail(2) == "line3\nerr"


def test_run_command_timeout_and_missing_binary() -> None:
    assert run_command(["sleep", "5"], timeout=0.2).returncode == 124
    assert run_command(["/nonexistent/binary"]).returncode == 127


def test_compose_command_is_bound_to_project(tmp_path: Path) -> None:
    c = Compose("rbd-x", tmp_path, ["docker-compose.yml"], tmp_path / ".env")
    assert c.base[:4] == ["docker", "compose", "-p", "rbd-x"]
    assert str(tmp_path / "docker-compose.yml") in c.base and str(tmp_path / ".env") in c.base
