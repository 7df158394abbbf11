"""The pytest plugin through pytester: option precedence, bad values, the Docker skip."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

PROBE = """
from rollback_drill.fixtures.options import setting

def test_probe(pytestconfig):
    print("RATE", setting(pytestconfig, "drill_load_rate"))
    print("SCALE", setting(pytestconfig, "drill_time_scale"))
    print("REQ", setting(pytestconfig, "drill_require_docker"))
"""


@pytest.fixture
def probe(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    pytester.makeconftest('pytest_plugins = ["rollback_drill.fixtures.options"]')
    pytester.makepyfile(test_probe=PROBE)
    return pytester


def test_defaults(probe: pytest.Pytester) -> None:
    res = probe.runpytest_subprocess("-s")
    res.stdout.fnmatch_lines(["*RATE 40.0*", "*SCALE 10.0*", "*REQ False*"])


def test_cli_beats_env_beats_ini(probe: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    probe.makeini("[pytest]\ndrill_load_rate = 7\ndrill_time_scale = 3\n")
    monkeypatch.setenv("RBD_LOAD_RATE", "9")
    res = probe.runpytest_subprocess("-s", "--drill-load-rate=11", "--drill-require-docker")
    res.stdout.fnmatch_lines(["*RATE 11.0*", "*SCALE 3.0*", "*REQ True*"])
    res = probe.runpytest_subprocess("-s")
    res.stdout.fnmatch_lines(["*RATE 9.0*"])


def test_bad_value_names_its_source(
    probe: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RBD_TIME_SCALE", "-2")
    res = probe.runpytest_subprocess("-s")
    res.stderr.fnmatch_lines(["*environment RBD_TIME_SCALE='-2': must be > 0*"])
    assert res.ret == pytest.ExitCode.USAGE_ERROR


def test_a_drill_needing_releases_the_target_lacks_skips_before_any_fixture(
    pytester: pytest.Pytester,
) -> None:
    from paths import REPO_ROOT

    pytester.makepyfile(
        test_needs="""
import pytest

@pytest.mark.needs_releases("hybrid-crashing-asgi")
def test_needs(fresh_stack):
    raise AssertionError("a stack was started")
"""
    )
    target = REPO_ROOT / "examples" / "notes" / "target.yaml"
    res = pytester.runpytest_subprocess("-rs", f"--drill-target={target}", "-p", "no:cacheprovider")
    res.stdout.fnmatch_lines(
        ["*not on this target: needs the reference app's faulty releases (hybrid-crashing-asgi)*"]
    )
    assert res.ret == pytest.ExitCode.OK
    res.assert_outcomes(skipped=1)
