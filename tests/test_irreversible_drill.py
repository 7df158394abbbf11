"""The irreversible whole drill (``drills/test_whole_irreversible.py``) runs on any target that
names an irreversible release (``releases.irreversible``); on one that names none it skips,
saying why, before its stack starts (it asks for the stack only after this check). The drill
itself needs Docker (``-m full``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from paths import REPO_ROOT

from rollback_drill.cli import drill_args

pytest_plugins = ["pytester"]

EXAMPLE = REPO_ROOT / "examples" / "notes" / "target.yaml"


def test_a_target_naming_no_irreversible_release_skips_before_any_stack(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    text = EXAMPLE.read_text()
    assert "  irreversible: v2-irreversible\n" in text
    target = tmp_path / "target.yaml"
    target.write_text(
        text.replace("  irreversible: v2-irreversible\n", "").replace(
            "project_dir: .", f"project_dir: {EXAMPLE.parent}"
        )
    )
    args = drill_args(target, "full", tmp_path / "reports", None, ["-k", "irreversible", "-rs"])
    res = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    res.stdout.fnmatch_lines(
        ["*not on this target: names no release with an irreversible migration*"]
    )
    res.assert_outcomes(skipped=1)
