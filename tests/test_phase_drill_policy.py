"""The phase drills' rollbacks are judged by the run's policy (issue 17 item 3): ``phase_drill``
hands ``drill_policy`` -- the policy file the session loaded (``--drill-policy``) -- to the
executor, so a phase budget edited in a copy of the policy moves what the drill checks.

Through pytest as a drill runs (pytester, a process of its own), the plugin's own fixtures;
only the stack is a stand-in (no Docker) and the phases do nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rollback_drill.policy import DEFAULT_POLICY_PATH

pytest_plugins = ["pytester"]

DRILL = """
from types import SimpleNamespace

import pytest

from rollback_drill.checks.success import phases_within_budget
from rollback_drill.journal import Journal
from rollback_drill.rollback import executor


class StandInStack:
    '''What the executor touches of a stack: journal, state directory, containers.'''

    def __init__(self, root):
        self.journal = Journal()
        self.workspace = SimpleNamespace(state_dir=root / "state", root=root)
        self.project = "rbd-standin"

    def containers(self, service=None):
        return []

    def forget_ports(self):
        pass


@pytest.fixture
def fresh_stack(tmp_path):
    return StandInStack(tmp_path)


def test_budgets(phase_drill, monkeypatch):
    monkeypatch.setattr(executor, "PHASE_RUNNERS", {n: lambda run: None for n in range(1, 6)})
    result = phase_drill.rollback((1, 2), "the policy's budgets")
    for check in phases_within_budget(result):
        print("CHECK", check.name, check.expected, check.passed)
    print("BUDGET", result.budget_s)
"""


@pytest.fixture
def drill(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    pytester.makeconftest('pytest_plugins = ["rollback_drill.fixtures"]')
    pytester.makepyfile(test_phase=DRILL)
    return pytester


def test_phase_budgets_come_from_the_runs_policy(drill: pytest.Pytester, tmp_path: Path) -> None:
    shipped = drill.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    shipped.assert_outcomes(passed=1)
    shipped.stdout.fnmatch_lines(
        [
            "CHECK Phase 1 (Stop Deployment) within the plan's budget <= 30 s True",
            "CHECK Phase 2 (Quick Rollback (Configuration Only)) within the plan's budget "
            "<= 120 s True",
            "BUDGET 150.0",
        ]
    )
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["rollback"]["phases"][1]["budget_s"] = 60  # Phase 2: 2 minutes -> 1
    copy = tmp_path / "policy.yaml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    edited = drill.runpytest_subprocess("-s", "-p", "no:cacheprovider", f"--drill-policy={copy}")
    edited.assert_outcomes(passed=1)
    edited.stdout.fnmatch_lines(
        [
            "CHECK Phase 2 (Quick Rollback (Configuration Only)) within the plan's budget "
            "<= 60 s True",
            "BUDGET 90.0",
        ]
    )
