from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rollback_drill.backup import MANIFEST, BackupSet, load_backups
from rollback_drill.errors import BackupError


def fake_stack(tmp_path: Path) -> Any:
    return SimpleNamespace(workspace=SimpleNamespace(state_dir=tmp_path), project="rbd-unit")


def backup_set() -> BackupSet:
    return BackupSet(
        created=1.0,
        release="pre-hybrid",
        commit="a" * 40,
        commit_file="/tmp/x/pre-migration-commit.txt",
        nginx_conf="/etc/nginx/nginx.conf",
        nginx_backup="/etc/nginx/nginx.conf.pre-hybrid.bak",
        nginx_sha256="b" * 64,
        dump="/backups/pre-migration-20260101T000000Z.dump",
        dump_sha256="c" * 64,
        dump_started=2.0,
        dump_finished=3.0,
        dump_table_data=9,
        files={"docker-compose.yml.backup": "d" * 64, ".env.backup": "e" * 64},
    )


def test_manifest_round_trip() -> None:
    b = backup_set()
    assert BackupSet.from_json(b.to_json()) == b
    assert asdict(b)["dump"].endswith(".dump")


def test_no_manifest_means_no_backup_set_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(BackupError) as err:
        load_backups(fake_stack(tmp_path))
    message = str(err.value)
    assert message.startswith("no backup set for rbd-unit: run the Configuration Backup Procedure")
    assert "\n" not in message


def test_unreadable_manifest_is_an_error(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(BackupError, match="unreadable"):
        load_backups(fake_stack(tmp_path))
    (tmp_path / MANIFEST).write_text('{"created": 1}')
    with pytest.raises(BackupError, match="unreadable"):
        load_backups(fake_stack(tmp_path))


def test_manifest_is_loaded(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(backup_set().to_json())
    assert load_backups(fake_stack(tmp_path)) == backup_set()
