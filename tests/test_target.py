from __future__ import annotations

from pathlib import Path

import pytest
from paths import REFERENCE_TARGET

from rollback_drill.errors import TargetError
from rollback_drill.target import load_target


def test_reference_target_loads_with_resolved_compose_dir() -> None:
    target = load_target(REFERENCE_TARGET)
    assert target.services.asgi == "backend-asgi"
    assert (target.compose_dir / "docker-compose.yml").is_file()
    assert target.overlay_dir("hybrid").is_dir()
    assert target.migration_rollback == {"ai_model": "0010", "chat_session": "0010"}


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="target file not found"):
        load_target(tmp_path / "nope.yaml")


def test_unknown_field_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text(REFERENCE_TARGET.read_text() + "surprise: 1\n")
    with pytest.raises(TargetError, match=r"field 'surprise'"):
        load_target(bad)


def test_missing_compose_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    text = REFERENCE_TARGET.read_text().replace("../compose", str(tmp_path))
    bad.write_text(text)
    with pytest.raises(TargetError, match=r"compose file .* not found"):
        load_target(bad)


def test_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TargetError, match="not valid YAML"):
        load_target(bad)


def test_unknown_overlay() -> None:
    with pytest.raises(TargetError, match="no overlay for release 'nope'"):
        load_target(REFERENCE_TARGET).overlay_dir("nope")
