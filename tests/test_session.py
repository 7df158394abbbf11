"""``rollback-drill up``/``down`` without Docker: the target and release are resolved first."""

from __future__ import annotations

import pytest
from paths import REPO_ROOT

from rollback_drill.cli import main
from rollback_drill.errors import TargetError
from rollback_drill.session import resolve_release
from rollback_drill.target import load_target

REFERENCE = REPO_ROOT / "targets" / "reference.yaml"


def test_no_target_is_one_line_asking_for_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RBD_TARGET", raising=False)
    assert main(["up"]) == 12
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--target" in err


def test_rbd_target_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RBD_TARGET", str(REPO_ROOT / "targets" / "missing.yaml"))
    assert main(["up"]) == 12
    assert "missing.yaml: target file not found" in capsys.readouterr().err


def test_releases() -> None:
    target = load_target(REFERENCE)
    assert resolve_release(target, None) == "pre-hybrid"
    assert resolve_release(target, "next") == resolve_release(target, "hybrid") == "hybrid"
    with pytest.raises(TargetError, match=r"no release 'nope' .*\(previous = pre-hybrid"):
        resolve_release(target, "nope")
