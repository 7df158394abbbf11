"""The readiness review never lets a secret out: a finding's text can quote what a command said
(``docker compose config`` quotes the value it rejects), and that value can be the run's
generated password or a secret taken from the environment. ``check-target --deep`` (printed
lines, JSON, its one-line error) and the drill report (HTML, JUnit properties) show ``***``.

A copy of the example target whose compose file publishes a port named by a secret; the static
review only (the Compose binary, no daemon: ``DOCKER_HOST`` points nowhere, so no ``nginx -t``
container).
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from paths import REPO_ROOT

from rollback_drill import readiness
from rollback_drill.errors import ComposeMissing, NotReady
from rollback_drill.fixtures.options import SETTINGS
from rollback_drill.fixtures.report import readiness_properties, review_target
from rollback_drill.preflight import check_compose
from rollback_drill.report import RunReport, render_html

EXAMPLE = REPO_ROOT / "examples" / "notes"
TOKEN = "NOTES_DEPLOY_TOKEN"  # a secret the target takes from the drill's environment


@pytest.fixture(scope="module")
def compose_available() -> None:
    try:
        check_compose()
    except ComposeMissing as exc:
        pytest.skip(f"needs docker compose: {exc}")


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("compose", "variable"),
    [
        # the next release's config fails: its finding comes from the run's workspace
        ("releases/v2/compose.yaml", TOKEN),
        ("releases/v2/compose.yaml", "NOTES_DEMO_PASSWORD"),  # generated for the run
        # the previous release's config fails: no workspace, the finding is its error
        ("compose.yaml", TOKEN),
        ("compose.yaml", "NOTES_DEMO_PASSWORD"),
    ],
)
def test_a_secret_in_a_findings_text_is_not_shown(
    compose_available: None,
    compose: str,
    variable: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = f"tok-{secrets.token_hex(8)}"
    monkeypatch.setenv(TOKEN, token)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    root = tmp_path / "notes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "target.yaml"
    _replace(target, "  generated: [", f"  from_environment: [{TOKEN}]\n  generated: [")
    _replace(root / compose, '- "8000:8000"', '- "${' + variable + '}"')

    printed: list[str] = []
    with pytest.raises(NotReady) as error:  # check-target --deep --no-start --json
        readiness.check_deep(
            target, start=False, json_path=tmp_path / "r.json", emit=printed.append
        )
    settings = {"drill_target": target, "drill_load_rate": 40.0}
    data = review_target(SimpleNamespace(stash={SETTINGS: settings}))  # type: ignore[arg-type]
    shown = {
        "printed": "\n".join(printed),
        "json": (tmp_path / "r.json").read_text(),
        "report": render_html(RunReport("r1", "now", readiness=data)),
        "junit": "\n".join(str(value) for _, value in readiness_properties(data)),
    }
    # the finding is there, its detail scrubbed where the value stood (a generated value the
    # test cannot know: compose quotes it, or *** when scrubbed)
    for name, text in shown.items():
        assert "invalid containerPort: ***" in text, name
    for name, text in {**shown, "error": str(error.value)}.items():
        assert token not in text, name
