"""Faulty releases: built as real commits in a run's workspace, deployed and reverted through
a deploy function; the catalogue's parameters and overlays. No Docker needed."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from paths import REFERENCE_TARGET, REPO_ROOT

from rollback_drill.deploy import SERVING
from rollback_drill.errors import FaultError
from rollback_drill.faults import faulty_releases as releases
from rollback_drill.faults.base import Effect
from rollback_drill.faults.release import DEFECT_FILE, FaultyRelease, build_release
from rollback_drill.journal import Journal
from rollback_drill.stack import Stack
from rollback_drill.target import Target, load_target
from rollback_drill.workspace import Workspace, create_workspace

COMPOSE = REPO_ROOT / "compose"


@pytest.fixture
def target() -> Target:
    return load_target(REFERENCE_TARGET)


@pytest.fixture
def workspace(target: Target, tmp_path: Path) -> Iterator[Workspace]:
    ws = create_workspace(target, run_id="unitfault", base=tmp_path)
    try:
        yield ws
    finally:
        ws.remove()


def fake_stack(target: Target, workspace: Workspace) -> Any:
    stack = SimpleNamespace(target=target, workspace=workspace, journal=Journal())
    stack.current_release = lambda: Stack.current_release(stack)  # type: ignore[arg-type]
    return stack


def test_build_commits_the_good_release_plus_overlay_and_config(
    target: Target, workspace: Workspace
) -> None:
    head = workspace.head()
    overlay = target.overlay_dir("hybrid-flaky-crud")
    config = {"fail": {"kind": "error", "share": 0.2, "paths": ["/api/models/"]}}
    marker = target.releases.marker_file
    commit = build_release(
        workspace, "hybrid-flaky-crud", overlay, base="hybrid", config=config, marker_file=marker
    )
    assert workspace.head() == head  # the checkout is left alone
    assert workspace.git("rev-parse", "HEAD") == head
    assert workspace.git("rev-parse", "hybrid-flaky-crud^{commit}") == commit
    assert workspace.git("rev-parse", f"{commit}~1") == workspace.commits["hybrid"]
    files = workspace.git("ls-tree", "-r", "--name-only", commit).splitlines()
    assert "app/arena/release_defects.py" in files
    assert "app/chat_session/migrations/0011_chatsession_transport.py" in files  # hybrid's
    shown = json.loads(workspace.git("show", f"{commit}:{DEFECT_FILE}"))
    assert shown == config
    assert workspace.git("show", f"{commit}:{marker}") == "hybrid-flaky-crud"
    assert workspace.git("status", "--porcelain") == ""


def test_rebuilding_is_idempotent_but_refuses_other_content(
    target: Target, workspace: Workspace
) -> None:
    overlay = target.overlay_dir("hybrid-slow-crud")
    slow = {"slow": {"delay_ms": 40.0, "share": 0.1, "paths": ["/api/models/"]}}
    first = build_release(workspace, "hybrid-slow-crud", overlay, base="hybrid", config=slow)
    again = build_release(workspace, "hybrid-slow-crud", overlay, base="hybrid", config=slow)
    assert first == again
    other = {"slow": {"delay_ms": 80.0, "share": 0.1, "paths": ["/api/models/"]}}
    with pytest.raises(FaultError, match="another content"):
        build_release(workspace, "hybrid-slow-crud", overlay, base="hybrid", config=other)
    assert workspace.git("status", "--porcelain") == ""


def test_apply_deploys_the_faulty_release_and_revert_the_good_one(
    target: Target, workspace: Workspace
) -> None:
    stack = fake_stack(target, workspace)
    deployed: list[str] = []
    hooks: list[str] = []

    def deploy(tag: str) -> None:
        deployed.append(tag)
        workspace.checkout(tag)
        with stack.journal.step("deploy", tag):
            stack.journal.event("deploy", SERVING)

    fault = FaultyRelease(
        stack,
        "hybrid-debug-exposed",
        observer=lambda f: Effect(True, "x", "y"),
        deploy=deploy,
    )
    fault.before_deploy = lambda: hooks.append("before")
    fault.after_revert = lambda: hooks.append("after")
    fault.apply()
    fault.apply()
    serving = next(e for e in stack.journal.events if e.name == SERVING)
    assert fault.live_at == serving.wall  # the new containers served from then
    assert fault.verify_effect().seen
    fault.revert()
    fault.revert()
    assert deployed == ["hybrid-debug-exposed", "hybrid"]
    assert hooks == ["before", "after"]
    starts = [e for e in stack.journal.of_kind("fault") if e.data["phase"] == "start"]
    assert starts[0].data["params"]["release"] == "hybrid-debug-exposed"


def test_a_failed_deploy_is_rolled_forward_to_the_good_release(
    target: Target, workspace: Workspace
) -> None:
    stack = fake_stack(target, workspace)
    deployed: list[str] = []

    def deploy(tag: str) -> None:
        deployed.append(tag)
        workspace.checkout(tag)
        if tag != "hybrid":
            raise RuntimeError("build failed")

    fault = FaultyRelease(
        stack, "hybrid-broken-nginx", observer=lambda f: Effect(True, 1, ""), deploy=deploy
    )
    with pytest.raises(FaultError, match="build failed"):
        fault.apply()
    assert deployed == ["hybrid-broken-nginx", "hybrid"] and not fault.applied


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda s: releases.failing_share(s, 1.5), "share between 0 and 1"),
        (lambda s: releases.failing_share(s, 0.1, kind="disk"), "kind must be one of"),
        (lambda s: releases.slow_crud(s, 0), "delay_ms must be > 0"),
        (lambda s: releases.slow_stream(s, -5), "delay_ms must be > 0"),
        (lambda s: releases.cache_miss(s, -0.1), "between 0 and 1"),
        (lambda s: releases.ws_drop(s, 2), "between 0 and 1"),
        (lambda s: releases.leaky_asgi(s, cap_ratio=1.2), "between 0 and 1"),
    ],
)
def test_levels_are_validated(target: Target, workspace: Workspace, make: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        make(fake_stack(target, workspace))


def test_levels_become_the_release_configuration(target: Target, workspace: Workspace) -> None:
    stack = fake_stack(target, workspace)
    fault = releases.failing_share(stack, 0.075, kind="db")
    assert fault.release == "hybrid-db-pool-exhausted"
    assert fault.config == {
        "fail": {"kind": "db", "share": 0.075, "paths": list(releases.CRUD_PATHS)}
    }
    auth = releases.failing_share(stack, 0.05, kind="auth")
    assert "/api/auth/me/" in auth.config["fail"]["paths"]
    assert "/api/auth/login/" not in auth.config["fail"]["paths"]
    assert releases.leaky_asgi(stack, cap_ratio=0.93).config == {
        "leak": {"cap_ratio": 0.93, "step_mb": 8.0}
    }


CATALOGUE = [
    "hybrid-flaky-crud",
    "hybrid-db-pool-exhausted",
    "hybrid-redis-pool-exhausted",
    "hybrid-lost-sessions",
    "hybrid-slow-crud",
    "hybrid-cache-miss",
    "hybrid-crashing-asgi",
    "hybrid-leaky-asgi",
    "hybrid-ws-drop",
    "hybrid-slow-stream",
    "hybrid-session-mismatch",
    "hybrid-debug-exposed",
    "hybrid-broken-nginx",
    "hybrid-corrupting-migration",
]


@pytest.mark.parametrize("release", CATALOGUE)
def test_every_faulty_release_has_an_overlay(target: Target, release: str) -> None:
    assert target.overlay_dir(release).is_dir()


def _changed_lines_are_marked(base: list[str], overlay: list[str]) -> list[str]:
    """Lines the overlay adds or changes outside a block marked DEFECT (imports aside): what
    would be silent drift from the file the overlay copies."""
    bad = []
    matcher = difflib.SequenceMatcher(a=base, b=overlay, autojunk=False)
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("equal", "delete"):
            continue
        block = overlay[j1:j2]
        if any("DEFECT" in line for line in block):
            continue
        bad += [ln for ln in block if not ln.startswith(("import ", "from "))]
    return bad


def _copied_files() -> list[tuple[Path, Path]]:
    pairs = []
    for overlay in sorted((COMPOSE / "releases").iterdir()):
        if overlay.name == "hybrid":
            continue
        for path in overlay.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(overlay)
            for base in (COMPOSE / "releases" / "hybrid" / rel, COMPOSE / rel):
                if base.is_file():
                    pairs.append((base, path))
                    break
    return pairs


def test_overlays_change_the_files_they_copy_only_where_marked() -> None:
    pairs = _copied_files()
    assert len(pairs) >= 5, pairs  # bin/asgi twice, bin/wsgi, wsgi.py, nginx.conf
    for base, copy in pairs:
        drift = _changed_lines_are_marked(
            base.read_text().splitlines(), copy.read_text().splitlines()
        )
        assert drift == [], f"{copy} drifted from {base}: {drift}"


def test_p95_delay_is_solved_on_the_distribution_including_its_tail() -> None:
    # 1000 requests: 95 % spread over 5..14 ms, a tail of 5 % at 40 ms; P95 14 ms, median 10 ms
    hist = [(0.005 + i / 1000, 95.0) for i in range(10)] + [(0.040, 50.0)]
    assert releases.weighted_quantile(hist, 0.95) == pytest.approx(0.014)
    assert releases.weighted_quantile(hist, 0.50) == pytest.approx(0.010)
    delay_ms = releases.p95_delay_ms(0.028, hist, share=0.10)
    model = releases.slowed(hist, delay_ms / 1000, 0.10)
    assert releases.weighted_quantile(model, 0.95) == pytest.approx(0.028, abs=1e-6)
    assert delay_ms == pytest.approx(14.0, abs=1e-3)
    # "median plus delay" (28 - 10 = 18 ms) overshoots: the slowed requests spread above 28 ms
    naive = releases.slowed(hist, 0.018, 0.10)
    assert releases.weighted_quantile(naive, 0.95) == pytest.approx(0.032, abs=1e-6)
    with pytest.raises(ValueError, match="cannot be reached"):
        releases.p95_delay_ms(0.010, hist)


def test_slowed_by_a_delay_distribution_keeps_the_weights_and_spreads_the_slowed_share() -> None:
    hist = [(0.010, 80.0), (0.020, 20.0)]
    one = releases.slowed_by(hist, [(0.005, 3.0)], 0.25)
    assert one == releases.slowed(hist, 0.005, 0.25)
    spread = releases.slowed_by(hist, [(0.004, 1.0), (0.006, 1.0)], 0.25)
    assert sum(w for _, w in spread) == pytest.approx(100.0)
    assert sorted({round(v, 4) for v, _ in spread}) == [0.010, 0.014, 0.016, 0.020, 0.024, 0.026]
    assert releases.weighted_quantile(spread, 0.5) == releases.weighted_quantile(one, 0.5)
    with pytest.raises(ValueError, match="no delays"):
        releases.slowed_by(hist, [], 0.25)
