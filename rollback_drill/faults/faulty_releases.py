"""The catalogue of faulty hybrid releases: the defects the plan's triggers guard against.

Each function returns a :class:`~rollback_drill.faults.release.FaultyRelease`: which overlay
(``compose/releases/...``), what defect configuration, and how its effect is proven on the
running stack (through nginx, with the drill user's own session -- never by trusting the
deployment step). The releases and where their defect lives:

========================== =============================== ===================================
release                    defect (in the release)         plan trigger it drives
========================== =============================== ===================================
hybrid-flaky-crud          new middleware fails a share    error rate > 10 % (and the bands)
hybrid-db-pool-exhausted   new DB pool runs dry (share)    DB connection failures (boundary)
hybrid-redis-pool-exh...   redis-py pool limit (share)     Redis connection failures / minute
hybrid-lost-sessions       session cookie dropped (share)  session auth failures (boundary)
hybrid-slow-crud           blocking call on CRUD paths     P95 > 2x / 1.5-2x baseline
hybrid-cache-miss          salted cache key (share)        cache hit rate drop
hybrid-crashing-asgi       WebSocket code aborts process   ASGI restarts > 5 in 10 min
hybrid-leaky-asgi          per-request cache, no eviction  memory > 95 % sustained
hybrid-ws-drop             closes a share of WebSockets    WebSocket disconnects > 30 %
hybrid-slow-stream         slow async code on streaming    P95 > 1.5x (ASGI: evaluate only)
hybrid-session-mismatch    ASGI session key prefix differs session auth failures > 5 %
hybrid-debug-exposed       DJANGO_DEBUG=1 in bin/wsgi      security vulnerability exposed
hybrid-broken-nginx        upstream port typo, passes -t   complete service unavailability
hybrid-corrupting-migr...  data migration rewrites titles  data corruption
========================== =============================== ===================================

Shares are exact (a counter picks every 1/share-th request), so the monitor's measured value
can be held against the injected level.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import websockets.exceptions

from rollback_drill.client import AppClient
from rollback_drill.faults.base import Effect
from rollback_drill.faults.release import FaultyRelease
from rollback_drill.signals.docker_stats import (
    find_memory_cgroup,
    machine_memory,
    read_cgroup_memory,
)
from rollback_drill.stack import Stack

__all__ = [
    "CRUD_PATHS",
    "FAIL_RELEASES",
    "RELEASES",
    "broken_nginx",
    "cache_miss",
    "corrupting_migration",
    "crashing_asgi",
    "debug_exposed",
    "failing_share",
    "leaky_asgi",
    "p95_delay_ms",
    "session_mismatch",
    "slow_crud",
    "slow_stream",
    "slowed",
    "weighted_quantile",
    "ws_drop",
]

CRUD_PATHS = ("/api/models/", "/api/sessions/")
AUTHENTICATED_WSGI_PATHS = ("/api/models/", "/api/sessions/", "/api/auth/me/", "/admin/")
FAIL_RELEASES = {
    "error": "hybrid-flaky-crud",
    "db": "hybrid-db-pool-exhausted",
    "redis": "hybrid-redis-pool-exhausted",
    "auth": "hybrid-lost-sessions",
}
RELEASES = (
    *FAIL_RELEASES.values(),
    "hybrid-broken-nginx",
    "hybrid-cache-miss",
    "hybrid-corrupting-migration",
    "hybrid-crashing-asgi",
    "hybrid-debug-exposed",
    "hybrid-leaky-asgi",
    "hybrid-session-mismatch",
    "hybrid-slow-crud",
    "hybrid-slow-stream",
    "hybrid-ws-drop",
)
"""Every faulty release of the reference app these drills deploy (its target's overlays)."""
_FAIL_SIGNS: dict[str, Callable[[httpx.Response], bool]] = {
    "error": lambda r: r.status_code == 500,
    "db": lambda r: r.status_code == 503 and r.headers.get("x-failure-cause") == "db-connection",
    "redis": lambda r: (
        r.status_code == 503 and r.headers.get("x-failure-cause") == "redis-connection"
    ),
    "auth": lambda r: r.status_code == 401,
}


def _share(value: float, what: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be a share between 0 and 1, not {value!r}")
    return float(value)


class _Session:
    """The drill user's own logged-in HTTP session through nginx, for effect proofs."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client: AppClient | None = None

    def get(self) -> AppClient:
        if self.client is None:
            client = AppClient(self.stack.base_url, timeout=10.0)
            user = self.stack.workspace.user
            answer = client.login(user.username, user.password)
            if answer.status != 200:
                client.close()
                raise ConnectionError(f"login for the effect probe answered {answer.status}")
            self.client = client
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _release(
    stack: Stack,
    release: str,
    config: Mapping[str, Any],
    observe: Callable[[FaultyRelease, _Session], Effect],
    *,
    live_from: str = "containers",
    describe: str,
    prepare: Callable[[FaultyRelease, _Session], None] | None = None,
    **kw: Any,
) -> FaultyRelease:
    session = _Session(stack)

    def observer(f: FaultyRelease) -> Effect:
        try:
            return observe(f, session)
        finally:
            session.close()  # no client is left open between looks

    fault = FaultyRelease(
        stack,
        release,
        config=config,
        observer=observer,
        live_from="deployed" if live_from == "deployed" else "containers",
        describe=describe,
        **kw,
    )
    if prepare is not None:

        def before() -> None:
            try:
                prepare(fault, session)
            finally:
                session.close()

        fault.before_deploy = before
    return fault


# ---- WSGI-side defects (arena/release_defects.py) ------------------------------------------


def failing_share(
    stack: Stack,
    share: float,
    *,
    kind: str = "error",
    paths: tuple[str, ...] | None = None,
    **kw: Any,
) -> FaultyRelease:
    """Exactly ``share`` of the requests of ``paths`` fail the way ``kind`` fails in reality:
    ``error`` (500), ``db`` (503 db-connection), ``redis`` (503 redis-connection), ``auth``
    (session cookie lost: 401). Default paths: CRUD; for ``auth`` every authenticated WSGI
    path except the login itself."""
    if kind not in FAIL_RELEASES:
        raise ValueError(f"kind must be one of {sorted(FAIL_RELEASES)}, not {kind!r}")
    share = _share(share, "share")
    if paths is None:
        paths = AUTHENTICATED_WSGI_PATHS if kind == "auth" else CRUD_PATHS
    release = FAIL_RELEASES[kind]
    sign = _FAIL_SIGNS[kind]
    probe_path = "/api/models/" if any(p.startswith("/api/models") for p in paths) else paths[0]

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        client = session.get()
        seen: list[int] = []
        for _ in range(max(3, min(40, round(2 / share)) if share else 3)):
            r = client.http.get(probe_path)
            seen.append(r.status_code)
            if sign(r) and r.headers.get("x-release") == release:
                return Effect(
                    True,
                    r.status_code,
                    f"{kind} failures answered by {release}",
                    f"after {len(seen)} requests of {probe_path}",
                )
        return Effect(False, seen, f"a {kind} failure from {release} on {probe_path}")

    config = {"fail": {"kind": kind, "share": share, "paths": list(paths)}}
    return _release(
        stack,
        release,
        config,
        observe,
        describe=f"{kind} failure on {share:.2%} of {', '.join(paths)}",
        **kw,
    )


def slow_crud(
    stack: Stack,
    delay_ms: float,
    *,
    share: float = 1.0,
    paths: tuple[str, ...] = CRUD_PATHS,
    **kw: Any,
) -> FaultyRelease:
    """A blocking call of ``delay_ms`` on exactly ``share`` of the requests of ``paths``.

    With ``share`` above 5 % the P95 lands inside the slowed requests: for a share of 10 %,
    about their median, i.e. the median latency plus ``delay_ms`` -- which is how a drill
    sets the P95 to a chosen multiple of its baseline (see ``p95_delay_ms``). A share of 1
    shifts every request (and so also the P95) by ``delay_ms``."""
    if delay_ms <= 0:
        raise ValueError(f"delay_ms must be > 0, not {delay_ms!r}")
    share = _share(share, "share")
    release = "hybrid-slow-crud"

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        client = session.get()
        path = paths[0] if paths[0] != "/api/sessions/" else "/api/sessions/?limit=1"
        took: list[float] = []
        for _ in range(max(1, min(40, round(2 / share)))):
            started = time.perf_counter()
            r = client.http.get(path)
            took.append(round((time.perf_counter() - started) * 1000, 1))
            if r.headers.get("x-release") == release and took[-1] >= 0.95 * delay_ms:
                return Effect(True, took[-1], f">= {delay_ms:g} ms from {release}")
        return Effect(False, took, f"a request of {path} taking >= {delay_ms:g} ms")

    config = {"slow": {"delay_ms": float(delay_ms), "share": share, "paths": list(paths)}}
    return _release(
        stack,
        release,
        config,
        observe,
        describe=f"+{delay_ms:g} ms on {share:.0%} of {', '.join(paths)}",
        **kw,
    )


Histogram = Sequence[tuple[float, float]]  # (latency seconds, count), as RecordStore.histogram


def weighted_quantile(weighted: Histogram, q: float) -> float:
    """The ``q`` quantile of (value, weight) pairs: the first value whose cumulative weight
    reaches ``q`` of the total (HdrHistogram's rule)."""
    ordered = sorted(weighted)
    total = sum(w for _, w in ordered)
    if total <= 0:
        raise ValueError("empty distribution")
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= q * total * (1 - 1e-12):
            return value
    return ordered[-1][0]


def slowed(hist: Histogram, delay_s: float, share: float) -> list[tuple[float, float]]:
    """The distribution ``hist`` becomes when exactly ``share`` of it is ``delay_s`` slower."""
    return slowed_by(hist, [(delay_s, 1)], share)


def slowed_by(
    hist: Histogram, delays: Sequence[tuple[float, float]], share: float
) -> list[tuple[float, float]]:
    """The distribution ``hist`` becomes when exactly ``share`` of it is slowed by a delay
    drawn from the distribution ``delays`` ((seconds, weight) pairs)."""
    total = sum(w for _, w in delays)
    if total <= 0:
        raise ValueError("no delays to slow by")
    out = [(v, (1 - share) * n) for v, n in hist]
    out += [(v + d, share * n * w / total) for v, n in hist for d, w in delays]
    return out


def p95_delay_ms(target_s: float, hist: Histogram, *, share: float = 0.10) -> float:
    """The delay on ``share`` of the requests that moves the P95 of ``hist`` (the latencies
    the stack has without the defect) to ``target_s``. Solved on the distribution itself, not
    from a formula: where the slowed requests overlap the unslowed tail, the P95 climbs higher
    into the slowed ones, which a bare "target minus the median" misses."""
    if weighted_quantile(hist, 0.95) >= target_s or share <= 0.05:
        raise ValueError(
            f"a P95 of {target_s * 1000:.1f} ms cannot be reached by slowing {share:.0%}"
        )
    lo, hi = 0.0, target_s
    for _ in range(60):  # bisection: the slowed P95 rises monotonically with the delay
        mid = (lo + hi) / 2
        if weighted_quantile(slowed(hist, mid, share), 0.95) < target_s:
            lo = mid
        else:
            hi = mid
    return hi * 1000


def cache_miss(stack: Stack, miss_share: float, **kw: Any) -> FaultyRelease:
    """The new cache key scheme misses on ``miss_share`` of the model catalogue lookups."""
    miss_share = _share(miss_share, "miss_share")
    release = "hybrid-cache-miss"

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        client = session.get()
        before = _counter(client, "app_cache_misses_total")
        n = 6
        for _ in range(n):
            client.get("/api/models/")
        misses = _counter(client, "app_cache_misses_total") - before
        # the healthy scheme misses at most once (the first lookup after the deploy)
        return Effect(
            misses >= 2,
            misses,
            f">= 2 misses in {n} catalogue lookups",
            f"miss share {miss_share:.0%}",
        )

    config = {"cache": {"miss_share": miss_share}}
    return _release(
        stack,
        release,
        config,
        observe,
        describe=f"cache key salted on {miss_share:.0%} of catalogue lookups",
        **kw,
    )


def _counter(client: AppClient, name: str) -> float:
    text = client.http.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


# ---- ASGI-side defects (arena/asgi_release.py) ---------------------------------------------


def crashing_asgi(stack: Stack, *, exit_code: int = 70, **kw: Any) -> FaultyRelease:
    """The release's WebSocket code aborts the ASGI process on every connection."""
    release = "hybrid-crashing-asgi"
    asgi = stack.target.services.asgi

    def restarts() -> int:
        # the deployment recreates the container, so its RestartCount starts at 0
        return sum(int(c.attrs["RestartCount"]) for c in stack.containers(asgi))

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        count = restarts()
        if count == 0:
            # provoke one crash, in case no WebSocket traffic runs
            with contextlib.suppress(
                OSError, websockets.exceptions.WebSocketException, TimeoutError
            ):
                session.get().ws_echo("crash?")
            count = restarts()
        return Effect(count > 0, count, f"{asgi} restarted by its restart policy after crashes")

    config = {"crash": {"exit_code": exit_code}}
    return _release(
        stack,
        release,
        config,
        observe,
        live_from="deployed",
        describe="ASGI process aborts on a WebSocket connection",
        **kw,
    )


def leaky_asgi(
    stack: Stack, *, cap_ratio: float = 0.965, step_mb: float = 8.0, **kw: Any
) -> FaultyRelease:
    """Every ASGI request keeps ``step_mb`` until memory use reaches ``cap_ratio`` of the
    container's limit (the collector's definition of usage)."""
    cap_ratio = _share(cap_ratio, "cap_ratio")
    release = "hybrid-leaky-asgi"
    asgi = stack.target.services.asgi

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        ratio = asgi_memory_ratio(stack)
        if ratio is not None and ratio < cap_ratio - 0.01:
            with contextlib.suppress(OSError, httpx.HTTPError):  # each ASGI request leaks
                session.get().stream(n=1, interval_ms=1)
        ok = ratio is not None and ratio >= cap_ratio - 0.01
        shown = None if ratio is None else round(ratio, 4)
        return Effect(ok, shown, f">= {cap_ratio - 0.01:.3f} of {asgi}'s memory limit")

    config = {"leak": {"cap_ratio": cap_ratio, "step_mb": step_mb}}
    return _release(
        stack,
        release,
        config,
        observe,
        live_from="deployed",
        describe=f"leaks up to {cap_ratio:.1%} of the memory limit",
        **kw,
    )


def asgi_memory_ratio(stack: Stack) -> float | None:
    """Highest memory use / limit among the ASGI containers (``docker stats``' definition)."""
    worst: float | None = None
    for c in stack.containers(stack.target.services.asgi):
        c.reload()
        pid = int(c.attrs["State"].get("Pid") or 0)
        if not pid:
            continue
        cgroup = find_memory_cgroup(c.id, pid)
        if cgroup is None:
            continue
        ratio = read_cgroup_memory(cgroup, machine_memory()).ratio
        worst = ratio if worst is None else max(worst, ratio)
    return worst


def ws_drop(stack: Stack, share: float, *, after_messages: int = 1, **kw: Any) -> FaultyRelease:
    """The release closes exactly ``share`` of the WebSockets (1011) after a reply or so."""
    share = _share(share, "share")
    release = "hybrid-ws-drop"

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        client = session.get()
        url = "ws" + client.base_url.removeprefix("http") + "/ws/chat/probe/"
        cookie = "; ".join(f"{k}={v}" for k, v in client.http.cookies.items())
        from websockets.sync.client import connect

        for _ in range(max(3, min(30, round(2 / share)) if share else 3)):
            try:
                with connect(url, additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
                    for n in range(after_messages + 1):
                        ws.send(f"probe {n}")
                        ws.recv(timeout=10)
            except websockets.exceptions.ConnectionClosedError as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code == 1011:
                    return Effect(True, code, "the server closes WebSockets with 1011")
        return Effect(False, "no drop seen", f"a 1011 close on ~{share:.0%} of WebSockets")

    config = {"ws_drop": {"share": share, "after_messages": after_messages}}
    return _release(
        stack,
        release,
        config,
        observe,
        live_from="deployed",
        describe=f"drops {share:.0%} of WebSockets",
        **kw,
    )


def slow_stream(stack: Stack, delay_ms: float, *, share: float = 1.0, **kw: Any) -> FaultyRelease:
    """The release's async code awaits ``delay_ms`` before serving exactly ``share`` of the
    streams (see :func:`slow_crud` for how a share of 10 % places the P95)."""
    if delay_ms <= 0:
        raise ValueError(f"delay_ms must be > 0, not {delay_ms!r}")
    share = _share(share, "share")
    release = "hybrid-slow-stream"

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        took: list[float] = []
        for _ in range(max(1, min(40, round(2 / share)))):
            started = time.perf_counter()
            answer, _ = session.get().stream(n=1, interval_ms=1)
            took.append(round((time.perf_counter() - started) * 1000, 1))
            on_asgi = answer.release == release and answer.served_by == "asgi"
            if on_asgi and took[-1] >= delay_ms:
                return Effect(True, took[-1], f">= {delay_ms:g} ms from {release} on asgi")
        return Effect(False, took, f"a stream taking >= {delay_ms:g} ms from {release} on asgi")

    config = {"slow": {"delay_ms": float(delay_ms), "share": share, "paths": ["/api/stream/"]}}
    return _release(
        stack,
        release,
        config,
        observe,
        live_from="deployed",
        describe=f"+{delay_ms:g} ms on {share:.0%} of streams",
        **kw,
    )


# ---- configuration, nginx and migration defects ----------------------------------------------


def session_mismatch(stack: Stack, **kw: Any) -> FaultyRelease:
    """ASGI reads sessions under another cache key prefix than WSGI writes them."""
    release = "hybrid-session-mismatch"

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        client = session.get()
        me = client.get("/api/auth/me/")
        with client.http.stream("GET", "/api/stream/", params={"n": 1}) as r:
            status, served = r.status_code, r.headers.get("x-served-by")
        ok = me.status == 200 and status == 401 and served == "asgi"
        return Effect(
            ok,
            {"wsgi /api/auth/me/": me.status, "asgi /api/stream/": status},
            "the WSGI session valid on WSGI (200) and unknown to ASGI (401)",
        )

    return _release(
        stack,
        release,
        {},
        observe,
        live_from="deployed",
        describe="SESSION_CACHE_KEY_PREFIX differs between WSGI and ASGI",
        **kw,
    )


def debug_exposed(stack: Stack, **kw: Any) -> FaultyRelease:
    """The release's WSGI entrypoint turns DJANGO_DEBUG on: technical pages for anyone."""
    release = "hybrid-debug-exposed"

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        with httpx.Client(base_url=stack.base_url, timeout=10.0) as anon:
            r = anon.get(f"/api/rbd-probe-{secrets.token_hex(4)}/")
        exposed = r.status_code == 404 and "URLconf" in r.text
        return Effect(
            exposed,
            r.status_code,
            "Django's technical 404 page (URLconf listed)",
            f"release {r.headers.get('x-release')}",
        )

    return _release(stack, release, {}, observe, describe="DJANGO_DEBUG=1 in bin/wsgi", **kw)


def broken_nginx(stack: Stack, **kw: Any) -> FaultyRelease:
    """An nginx config that passes ``nginx -t`` but proxies to a port nobody listens on."""
    release = "hybrid-broken-nginx"

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        r = httpx.get(stack.base_url + stack.target.paths.health, timeout=10.0)
        return Effect(r.status_code == 502, r.status_code, "502 from nginx on every path")

    return _release(
        stack,
        release,
        {},
        observe,
        live_from="deployed",
        describe="upstream port 8080 instead of 8000",
        **kw,
    )


def corrupting_migration(stack: Stack, **kw: Any) -> FaultyRelease:
    """A data migration capitalises every session title without recomputing checksums.

    Before deploying, a canary session is written; the proof is that the canary's title in
    the database no longer matches what was written (and its checksum no longer its fields).
    """
    release = "hybrid-corrupting-migration"
    canary: dict[str, Any] = {}

    def prepare(fault: FaultyRelease, session: _Session) -> None:
        client = session.get()
        models = client.get("/api/models/").body["results"]
        cid = str(uuid.uuid4())
        created = client.create_session(f"canary {cid[:8]}", int(models[0]["id"]), cid)
        if created.status not in (200, 201):
            raise ConnectionError(f"canary session not written: {created.status}")
        canary.update(client_id=cid, title=created.body["title"])

    def observe(fault: FaultyRelease, session: _Session) -> Effect:
        read = session.get().get(f"/api/sessions/{canary['client_id']}/")
        title = read.body.get("title") if isinstance(read.body, dict) else None
        return Effect(
            read.status == 200 and title != canary["title"],
            title,
            f"canary title rewritten (written as {canary['title']!r})",
        )

    return _release(
        stack,
        release,
        {},
        observe,
        prepare=prepare,
        live_from="deployed",
        describe="migration 0012 rewrites titles, checksums left stale",
        **kw,
    )
