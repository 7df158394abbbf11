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


def _reference_with(tmp_path: Path, old: str, new: str) -> Path:
    text = REFERENCE_TARGET.read_text()
    assert old in text
    path = tmp_path / "t.yaml"
    path.write_text(text.replace("../compose", str(REFERENCE_TARGET.parent.parent / "compose"))
                    .replace(old, new))  # fmt: skip
    return path


def test_a_schema_1_file_is_named_as_such(tmp_path: Path) -> None:
    path = _reference_with(tmp_path, "schema: 2\n", "")
    with pytest.raises(TargetError, match=r"field 'schema': this suite reads target schema 2"):
        load_target(path)


def test_an_undefined_reference_names_field_and_variable(tmp_path: Path) -> None:
    path = _reference_with(tmp_path, "password: ${POSTGRES_PASSWORD}", "password: ${DB_PW}")
    with pytest.raises(
        TargetError, match=r"field 'database.password': \$\{DB_PW\} is not defined in env"
    ):
        load_target(path)


def test_a_bad_env_name_names_the_field(tmp_path: Path) -> None:
    path = _reference_with(tmp_path, "generated: [POSTGRES_PASSWORD", "generated: [2BAD")
    with pytest.raises(TargetError, match=r"field 'env.generated': .*'2BAD'"):
        load_target(path)


def test_the_example_stack_target_loads() -> None:
    target = load_target(REFERENCE_TARGET.parent.parent / "examples/notes/target.yaml")
    assert target.services.wsgi == "web" and target.service("asgi") == "live"
    assert target.ports.asgi_port == 8001 and target.users.create is not None
    assert target.images["nginx:1.22"] == "rollback-drill/nginx:bookworm"
