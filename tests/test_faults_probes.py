"""The drill's own probes: what an anonymous client gets, and the probe loop's bookkeeping."""

from __future__ import annotations

import time

import httpx
import pytest

from rollback_drill.errors import ProbeError, TargetError
from rollback_drill.faults.probes import ProbeLoop, SecurityProbe
from rollback_drill.journal import Journal
from rollback_drill.monitor import Findings
from rollback_drill.wait import wait_for

SECRET = "s3cr3t-value"
PROTECTED = ("/api/sessions/?limit=1", "/api/models/", "/api/auth/me/")


def probe_of(url: str, secrets: tuple[str, ...] = (), **app_kw: bool) -> SecurityProbe:
    return SecurityProbe(
        url, secrets, transport=app(**app_kw), protected=PROTECTED, admin="/admin/"
    )


def app(*, debug: bool = False, open_data: bool = False, leak: bool = False) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in ("/api/sessions/", "/api/models/", "/api/auth/me/"):
            if open_data:
                return httpx.Response(200, json={"results": []})
            return httpx.Response(401, json={"error": "authentication required"})
        if path == "/admin/":
            return httpx.Response(302, headers={"location": "/admin/login/?next=/admin/"})
        if debug:
            body = "<h1>Page not found</h1> Using the URLconf defined in arena.urls"
            return httpx.Response(404, text=body + (f" SECRET_KEY={SECRET}" if leak else ""))
        return httpx.Response(404, json={"error": "not found"})

    return httpx.MockTransport(handler)


def test_a_healthy_app_gives_no_finding() -> None:
    probe = probe_of("http://127.0.0.1:8080", (SECRET,))
    assert probe() == 0 and probe.last == []


def test_debug_pages_open_data_and_leaked_secrets_are_findings() -> None:
    assert probe_of("http://127.0.0.1:1", debug=True)() == 1
    probe = probe_of("http://127.0.0.1:1", (SECRET,), debug=True, leak=True)
    assert probe() == 2 and "a secret of the run appears in a response" in probe.last
    opened = probe_of("http://127.0.0.1:1", open_data=True)
    assert opened() == 3
    assert all("without a session" in f for f in opened.last)


def test_probes_only_reach_loopback() -> None:
    with pytest.raises(TargetError):
        SecurityProbe("http://10.0.0.8:80")


def test_the_loop_adds_each_run_and_keeps_errors_as_no_evidence() -> None:
    findings = Findings()
    answers = iter([0, 2, RuntimeError("db down"), 1])

    def probe() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    loop = ProbeLoop("integrity", probe, findings, interval_s=0.01)
    assert [loop.run_once() for _ in range(4)] == [0, 2, None, 1]
    assert loop.runs == 3 and loop.found == 3 and loop.errors == ["RuntimeError: db down"]
    reading = findings.reading(time.time() - 60, time.time() + 1)
    assert (reading.value, reading.samples) == (3.0, 3)


def test_a_probe_that_raised_fails_the_block_naming_its_error() -> None:
    journal = Journal()

    def probe() -> int:
        raise ConnectionError("nginx refused")

    with (
        pytest.raises(
            ProbeError, match=r"integrity probe raised in \d+ of \d+ runs.*nginx refused"
        ),
        ProbeLoop("integrity", probe, Findings(), interval_s=0.01, journal=journal) as loop,
    ):
        wait_for(lambda: loop.errors, bool, timeout_s=5, what="a probe error")
    assert any(e.kind == "probe_error" for e in journal.events)


def test_the_error_that_ended_the_block_is_not_hidden_by_a_probe_that_also_ran() -> None:
    answers = iter([0])

    def probe() -> int:
        return next(answers)  # one run, then StopIteration on every later one

    with (
        pytest.raises(KeyError) as raised,
        ProbeLoop("integrity", probe, Findings(), interval_s=0.01) as loop,
    ):
        wait_for(lambda: loop.errors, bool, timeout_s=5, what="a probe error")
        raise KeyError("the drill's own failure")
    assert any("integrity probe raised" in note for note in raised.value.__notes__)


def test_a_probe_that_never_ran_is_why_the_block_failed() -> None:
    def probe() -> int:
        raise ConnectionError("relation chat_sessionx does not exist")

    with (
        pytest.raises(ProbeError, match="chat_sessionx") as raised,
        ProbeLoop("integrity", probe, Findings(), interval_s=0.01) as loop,
    ):
        wait_for(lambda: loop.errors, bool, timeout_s=5, what="a probe error")
        raise TimeoutError("no data_corruption decision")
    assert isinstance(raised.value.__cause__, TimeoutError)


def test_a_lenient_loop_only_keeps_its_errors() -> None:
    with ProbeLoop("security", lambda: 1 // 0, Findings(), interval_s=0.01, strict=False) as loop:
        wait_for(lambda: loop.errors, bool, timeout_s=5, what="a probe error")
    assert loop.errors[0].startswith("ZeroDivisionError")


def test_no_run_while_paused() -> None:
    with ProbeLoop("security", lambda: 0, Findings(), interval_s=0.01) as loop:
        wait_for(lambda: loop.runs, bool, timeout_s=5, what="a first run")
        with loop.paused():
            runs = loop.runs
            time.sleep(0.1)  # the period in which no run may happen is what is tested
            assert loop.runs == runs
        wait_for(lambda: loop.runs, lambda n: n > runs, timeout_s=5, what="runs again")


def test_the_loop_runs_on_a_thread_until_stopped() -> None:
    findings = Findings()
    with ProbeLoop("security", lambda: 0, findings, interval_s=0.01) as loop:
        deadline = time.monotonic() + 5
        while loop.runs < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    runs = loop.runs
    time.sleep(0.05)
    assert runs >= 3 and loop.runs == runs


def test_the_protected_paths_come_from_the_targets_profile() -> None:
    from paths import REFERENCE_TARGET, REPO_ROOT

    from rollback_drill.target import load_target

    ref = SecurityProbe.for_target(load_target(REFERENCE_TARGET), "http://127.0.0.1:1", ())
    assert set(ref.protected) == {"/api/models/", "/api/sessions/?limit=10", "/api/auth/me/"}
    assert ref.admin == "/admin/"
    notes = load_target(REPO_ROOT / "examples" / "notes" / "target.yaml")
    probe = SecurityProbe.for_target(notes, "http://127.0.0.1:1", ())
    assert set(probe.protected) == {"/v1/notes/?limit=10", "/accounts/whoami/"}
    assert probe.admin == "/manage/"
