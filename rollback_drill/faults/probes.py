"""The drill's own probes for the two triggers no request outcome shows: data corruption and
security exposure. A :class:`ProbeLoop` runs a probe every ``interval_s`` on a thread and adds
each run's number of findings to a :class:`~rollback_drill.monitor.Findings` (the monitor's
``integrity`` / ``security`` readings).

- :func:`integrity_probe` -- every acknowledged write of the load's ledger against the
  database, row by row (``checks.data``): missing rows and rows whose fields or stored
  checksum disagree with what was written are findings.
- :class:`SecurityProbe` -- what an anonymous client can get through nginx: data endpoints
  that answer without a session, the admin without a staff session, Django's technical debug
  pages, and any of the run's secrets in a response body. ``/metrics`` and ``/api/health/``
  are public by the app's contract and not findings.
"""

from __future__ import annotations

import contextlib
import secrets as _secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx

from rollback_drill.errors import ProbeError
from rollback_drill.journal import Journal
from rollback_drill.ledger import Ledger
from rollback_drill.load import require_loopback
from rollback_drill.monitor import Findings
from rollback_drill.profile import ReadBack, fill, template_values
from rollback_drill.target import Target

__all__ = ["ProbeError", "ProbeLoop", "SecurityProbe", "integrity_probe", "probe_loops"]


Probe = Callable[[], int]


def integrity_probe(dsn: str, ledger: Ledger, read_back: Sequence[ReadBack]) -> Probe:
    """Findings = acknowledged writes missing from the database or not intact."""
    from rollback_drill.checks.data import no_acked_write_lost

    def run() -> int:
        if not ledger.acked():
            return 0
        result = no_acked_write_lost(dsn, ledger, read_back)
        return int(result.measured["missing"]) + int(result.measured["corrupted"])

    return run


@dataclass
class SecurityProbe:
    """Anonymous requests that must be refused; each one that is not is a finding.

    ``protected``: paths that need a session (:meth:`for_target` takes them from the target's
    traffic profile: its CRUD reads and its auth check); refused means 401, 403 or a redirect
    (to a login page). ``admin``: the admin page, which must not answer 200 without a staff
    session. A path that cannot exist must not answer a technical debug page (Django's).
    """

    base_url: str
    secrets: Iterable[str] = ()
    transport: httpx.BaseTransport | None = None  # tests: instead of the network
    last: list[str] = field(default_factory=list)  # what the last run found
    protected: Sequence[str] = ()
    admin: str | None = None

    REFUSED = (301, 302, 303, 307, 401, 403)

    @classmethod
    def for_target(cls, target: Target, base_url: str, secrets: Iterable[str]) -> SecurityProbe:
        """The target's own requests that need a session, and its admin page."""
        profile = target.traffic
        reads = [
            r
            for r in (profile.categories.crud.requests if profile.categories.crud else [])
            if r.method == "GET" and not r.pools()
        ]
        auth = profile.categories.auth
        if auth is not None and auth.check is not None and not auth.check.pools():
            reads.append(auth.check)
        values = template_values(base_url, 0)
        paths = tuple(dict.fromkeys(fill(r.path, values) for r in reads))
        return cls(base_url, secrets, protected=paths, admin=target.paths.admin)

    def __post_init__(self) -> None:
        require_loopback(self.base_url)
        self.base_url = self.base_url.rstrip("/")
        self.secrets = tuple(self.secrets)

    def __call__(self) -> int:
        found: list[str] = []
        bodies: list[str] = []
        with httpx.Client(
            base_url=self.base_url, timeout=5.0, follow_redirects=False, transport=self.transport
        ) as c:
            for path in self.protected:
                r = c.get(path)
                bodies.append(r.text)
                if r.status_code not in self.REFUSED and r.status_code < 500:
                    found.append(f"{path} answered {r.status_code} without a session")
            if self.admin is not None and c.get(self.admin).status_code == 200:
                found.append(f"{self.admin} answered 200 without a staff session")
            missing = c.get(f"/rbd-probe-{_secrets.token_hex(4)}/")
            bodies.append(missing.text)
            if "URLconf" in missing.text or "Traceback" in missing.text:
                found.append("technical debug page served (DEBUG on)")
        for secret in self.secrets:
            if secret and any(secret in b for b in bodies):
                found.append("a secret of the run appears in a response")
        self.last = found
        return len(found)


class ProbeLoop:
    """Runs ``probe`` every ``interval_s`` until stopped; findings go to ``findings``.

    A probe that raises (the database down, nginx refusing) records nothing for that run --
    it is not evidence either way: the error is kept in ``errors`` and journaled, and leaving
    the loop (``stop`` / the ``with`` block) raises :class:`ProbeError` naming it, so that "0
    findings" never stands for "never ran". ``strict=False`` (``watch``'s live view, which
    shows the errors instead) only keeps them.
    """

    def __init__(
        self,
        name: str,
        probe: Probe,
        findings: Findings,
        *,
        interval_s: float = 1.0,
        journal: Journal | None = None,
        strict: bool = True,
    ) -> None:
        self.name, self.probe, self.findings = name, probe, findings
        self.interval_s = interval_s
        self.journal = journal
        self.strict = strict
        self._gate = threading.Lock()  # held by a run, and by ``paused``
        self.runs = 0
        self.errors: list[str] = []
        self.found = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No run while the block lasts (a deployment restarting what the probe reads: the
        monitor does not judge those minutes either); a run under way is waited for."""
        with self._gate:
            yield

    def run_once(self) -> int | None:
        with self._gate:
            return self._run_once()

    def _run_once(self) -> int | None:
        try:
            n = self.probe()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            self.errors.append(error)
            if self.journal is not None:
                self.journal.event("probe_error", self.name, error=error)
            return None
        self.runs += 1
        self.findings.add(n)
        if n and not self.found and self.journal is not None:
            self.journal.event("probe", self.name, findings=n)
        self.found += n
        return n

    def _loop(self) -> None:
        next_run = time.monotonic()
        while not self._stop.is_set():
            self.run_once()
            next_run += self.interval_s
            self._stop.wait(max(0.0, next_run - time.monotonic()))

    def start(self) -> ProbeLoop:
        self._thread = threading.Thread(target=self._loop, name=f"probe-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self.strict and self.errors:
            raise ProbeError(
                f"the {self.name} probe raised in {len(self.errors)} of "
                f"{len(self.errors) + self.runs} runs (last: {self.errors[-1]})"
            )

    def __enter__(self) -> ProbeLoop:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        try:
            self.stop()
        except ProbeError as probe_error:
            if exc is None:
                raise
            if self.runs == 0:  # it never gave evidence: that is why the block failed
                raise probe_error from exc
            exc.add_note(str(probe_error))  # else never hide what ended the block


def probe_loops(
    target: Target,
    base_url: str,
    *,
    integrity: Findings,
    security: Findings,
    ledger: Ledger,
    dsn: str | None,
    secrets: Iterable[str],
    interval_s: float = 1.0,
    journal: Journal | None = None,
    strict: bool = True,
) -> list[ProbeLoop]:
    """The integrity probe (when the database can be read: ``dsn`` and the target's read-back
    queries) and the security probe, feeding the monitor's findings; not started (enter each
    one: ``with``). Drills and ``watch`` make them here."""
    loops = []
    if dsn is not None and target.read_back:
        probe = integrity_probe(dsn, ledger, target.read_back)
        loops.append(
            ProbeLoop(
                "integrity", probe, integrity, interval_s=interval_s, journal=journal, strict=strict
            )
        )
    probe = SecurityProbe.for_target(target, base_url, secrets)
    loops.append(
        ProbeLoop(
            "security", probe, security, interval_s=interval_s, journal=journal, strict=strict
        )
    )
    return loops
