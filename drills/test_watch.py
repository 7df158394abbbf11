"""``watch`` drilled: the command a team runs during the real deployment, as a process, against
a drill's stack -- its own load, its own monitor and sources (the target's ``signals``), its
own baseline -- while the drill deploys a faulty release beside it.

The drill only deploys and reads what ``watch`` prints; the decision is ``watch``'s. The
cache-miss release makes the target's cache hit rate fall (the app's own counters, named in
the target's ``signals.metrics``): ``cache_hit_drop`` must be decided ("evaluate"), within the
rule's window and its slack. On any target, a paused WSGI service makes ``watch`` exit for a
rollback (status 3) and print the prescribed phases and the first phase's commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rollback_drill.drill import DrillRun
from rollback_drill.faults import PauseContainers, injected
from rollback_drill.faults import faulty_releases as releases
from rollback_drill.fixtures.options import setting
from rollback_drill.wait import wait_for
from rollback_drill.watch import EXIT_ROLLBACK

from ._support import RecordProperty, faulty_release, origin_of, scale_budget

pytestmark = [pytest.mark.full, pytest.mark.nightly]


class Watch:
    """``rollback-drill watch`` as a subprocess; its output lines collected as they come."""

    def __init__(self, run: DrillRun, target_path: Path, *extra: str) -> None:
        stack = run.stack
        env = dict(os.environ)
        for line in stack.workspace.env_file.read_text().splitlines():
            name, _, value = line.partition("=")
            env[name] = value  # the deployment's own env: users' and database credentials
        env["COLUMNS"] = "200"
        t = stack.target
        self.cmd = [
            sys.executable,
            "-m",
            "rollback_drill.watch",
            "--target",
            str(target_path),
            "--base-url",
            stack.base_url,
            "--project",
            stack.project,
            "--postgres-port",
            str(stack.port(t.services.postgres, t.ports.postgres)),
            "--time-scale",
            str(run.policy.time_scale),
            "--rate",
            "10",
            *extra,
        ]
        self.proc = subprocess.Popen(
            self.cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip()))

    def first(self, text: str, timeout_s: float) -> tuple[float, str]:
        """The first line holding ``text``; a timeout names the last lines watch printed."""

        def found() -> tuple[float, str] | None:
            if self.proc.poll() is not None and self._reader.is_alive() is False:
                hit = next(((t, ln) for t, ln in self.lines if text in ln), None)
                if hit is None:
                    raise AssertionError(f"watch exited {self.proc.returncode}: {self.tail()}")
            return next(((t, ln) for t, ln in self.lines if text in ln), None)

        hit = wait_for(
            found, lambda h: h is not None, timeout_s=timeout_s, what=f"watch: {text!r}",
            interval_s=0.2, hint=self.tail(),
        )  # fmt: skip
        assert hit is not None
        return hit

    def tail(self, n: int = 15) -> str:
        return "\n".join(ln for _, ln in self.lines[-n:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


@contextmanager
def watching(run: DrillRun, request: pytest.FixtureRequest, *extra: str) -> Iterator[Watch]:
    watch = Watch(run, Path(setting(request.config, "drill_target")).resolve(), *extra)
    try:
        yield watch
    finally:
        watch.stop()
        run.journal.event("watch", "output", lines=[ln for _, ln in watch.lines][-60:])


@pytest.mark.needs_releases("hybrid-cache-miss")
def test_watch_decides_the_cache_hit_drop_from_the_targets_own_signals(
    drill_run: DrillRun, request: pytest.FixtureRequest, record_property: RecordProperty
) -> None:
    run = drill_run
    budget = scale_budget(run, run.policy.rule("cache_hit_drop").window_s)
    # started on the previous release, which serves no WebSockets
    # --keep-watching: a deployment's restarts on 2 shared cores may read as a rollback (P95)
    # first; the cache verdict is what this drill is about
    with watching(run, request, "--duration", "600", "--no-websocket", "--keep-watching") as watch:
        watch.first("cache hit rate from: app metrics", timeout_s=60)
        run.capture_baseline()  # the drill's own, for its deployment; watch has its own
        watch.first("baseline captured: watching", timeout_s=run.policy.scale(600) + 60)
        fault = releases.cache_miss(run.stack, 0.8, deploy=run.deploy)
        with faulty_release(run, fault, "crud") as first:
            # the drill's deployment ended, or its load met the release (the later): watch
            # may decide earlier -- it judges the rolling update too, where the drill's
            # monitor does not
            live = origin_of(run, fault, first.at)
            at, line = watch.first("decision cache_hit_drop:", timeout_s=budget + 60)
        record_property("watch_decision", line)
        record_property("decided_after_deployment_s", round(at - live, 2))
        assert "deferred" in line, line
        assert at - live <= budget, f"decided {at - live:.1f} s after the release, budget {budget}"


@pytest.mark.anystack
def test_watch_exits_for_a_rollback_and_prints_the_prescribed_phases(
    drill_run: DrillRun, request: pytest.FixtureRequest, record_property: RecordProperty
) -> None:
    run = drill_run
    run.capture_baseline()
    run.deploy(run.stack.target.releases.next)
    budget = scale_budget(run, run.policy.rule("service_unavailable").window_s)
    with watching(run, request, "--duration", "600", "--changed", "code,config") as watch:
        watch.first("baseline captured: watching", timeout_s=run.policy.scale(600) + 60)
        with injected(PauseContainers(run.stack, run.stack.target.services.wsgi)) as fault:
            live = fault.live_at or time.time()
            at, line = watch.first("ROLL BACK", timeout_s=budget + 60)
            status = watch.proc.wait(timeout=30)
        record_property("watch_rollback", line)
        record_property("time_to_detect_s", round(at - live, 2))
        assert status == EXIT_ROLLBACK, watch.tail()
        phases = watch.first("prescribed phases:", timeout_s=5)[1]
        record_property("watch_prescription", phases)
        assert "1→3" in phases, phases  # a WSGI-side trigger after a code change: 1 -> 3
        asgi = run.stack.target.services.asgi
        watch.first(f"stop {asgi}", timeout_s=5)  # Phase 1's first command, on this target
