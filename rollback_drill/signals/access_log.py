"""nginx's access log as an instrument independent of the load generator.

A drill's fault states the level it aims at (2.5x the baseline P95, 20 % errors); the load
generator's own records are what the monitor judges, so they cannot also be the proof that the
fault reached its aim. nginx times every request itself (``$request_time``: from the first
byte read from the client to the last byte sent) and logs the status it sent: read from the
nginx container's output (``docker logs``: the log goes to stdout, as in the official image
and the reference stack's), parsed with the target's own ``log_format`` (``signals.access_log``
in the target file, copied verbatim from their nginx config), and sorted into the traffic
profile's categories by the profile's own paths.

Why by hand: no kept Python library parses an arbitrary nginx ``log_format`` (the
``nginx-log-parser`` style projects on PyPI are unmaintained or combined-format only); the
conversion below is a dozen lines -- each ``$variable`` a named group, everything else literal.

What it needs in the format: the request's end (``$msec``), ``$status``, ``$request_time``,
and the path (``$request_uri``, ``$uri`` or ``$request``). A format without them cannot measure
levels: :func:`check_format` says which is missing, and the drills report the level as "not
observable on this target" (never as passed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rollback_drill.profile import TrafficProfile

__all__ = [
    "AccessEntry",
    "AccessLog",
    "check_format",
    "classifier",
    "format_regex",
    "parse_lines",
    "quantile",
]

_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")
REQUIRED = ("msec", "status", "request_time")
PATH_VARS = ("request_uri", "uri", "request")


@dataclass(frozen=True)
class AccessEntry:
    time: float  # $msec: when the request ended (epoch seconds)
    category: str | None
    status: int
    request_time: float  # seconds
    path: str


def check_format(fmt: str) -> str | None:
    """What the format lacks for measuring levels, or None when it has it all."""
    names = {a or b for a, b in _VAR.findall(fmt)}
    missing = [f"${n}" for n in REQUIRED if n not in names]
    if not names & set(PATH_VARS):
        missing.append("one of $request_uri, $uri, $request")
    return f"the access log format lacks {', '.join(missing)}" if missing else None


def format_regex(fmt: str) -> re.Pattern[str]:
    """A regex for a whole line that ``fmt`` writes: each variable a named group matching as
    little as it can up to the literal text that follows it (so ``[$time_local]`` and
    ``"$request"`` keep their spaces)."""
    out, pos, seen = ["^"], 0, set()
    for m in _VAR.finditer(fmt):
        out.append(re.escape(fmt[pos : m.start()]))
        name = m.group(1) or m.group(2)
        out.append(f"(?P<{name}>.*?)" if name not in seen else ".*?")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(fmt[pos:]) + r"\s*$")
    return re.compile("".join(out))


def classifier(profile: TrafficProfile) -> Sequence[tuple[re.Pattern[str], str]]:
    """(path pattern, category) from the profile's own paths, most specific first: each
    ``{placeholder}`` matches one path segment; the query string is not compared."""
    c = profile.categories
    paths: list[tuple[str, str]] = []
    if c.crud is not None:
        paths += [(r.path, "crud") for r in c.crud.requests]
    if c.auth is not None:
        paths.append((profile.login.path, "auth"))
        if c.auth.check is not None:
            paths.append((c.auth.check.path, "auth"))
    if c.admin is not None:
        paths += [(c.admin.path, "admin")]
        if c.admin.login_page:
            paths.append((c.admin.login_page, "admin"))
    if c.streaming is not None:
        paths.append((c.streaming.path, "streaming"))
    if c.websocket is not None:
        paths.append((c.websocket.path, "websocket"))
    patterns = []
    for path, category in paths:
        bare = path.split("?", 1)[0]
        parts = re.split(r"(\{[^{}]*\})", bare)
        rx = "".join(r"[^/?]+" if p.startswith("{") else re.escape(p) for p in parts)
        patterns.append((re.compile(rx + r"(?:\?.*)?"), category, len(bare)))
    patterns.sort(key=lambda p: -p[2])
    return [(rx, category) for rx, category, _ in patterns]


def _path(fields: dict[str, str]) -> str:
    if fields.get("request_uri"):
        return fields["request_uri"]
    if fields.get("uri"):
        return fields["uri"]
    parts = fields.get("request", "").split(" ")
    return parts[1] if len(parts) > 1 else ""


def parse_lines(
    lines: Iterable[str], regex: re.Pattern[str], classes: Sequence[tuple[re.Pattern[str], str]]
) -> list[AccessEntry]:
    """The entries of the lines that match the format (other output -- nginx's own notices --
    is skipped)."""
    entries = []
    for line in lines:
        m = regex.match(line)
        if m is None:
            continue
        fields = m.groupdict()
        try:
            time_, status, rt = float(fields["msec"]), int(fields["status"]), fields["request_time"]
            request_time = float(rt)
        except (ValueError, KeyError):
            continue
        path = _path(fields)
        category = next((cat for rx, cat in classes if rx.fullmatch(path)), None)
        entries.append(AccessEntry(time_, category, status, request_time, path))
    return entries


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))
    return ordered[rank]


class AccessLog:
    """The access log of a stack's nginx containers, read on demand (``docker logs``).

    ``read(start, end)`` returns the entries whose request ended in the window. A container
    that a deployment recreates takes its log with it: read a window before the deployment
    (the baseline) before deploying.
    """

    def __init__(
        self, containers: Callable[[], Iterable[Any]], fmt: str, profile: TrafficProfile
    ) -> None:
        self._containers = containers  # the nginx service's containers (docker SDK objects)
        self.format = fmt
        self.regex = format_regex(fmt)
        self.classes = classifier(profile)
        self.missing = check_format(fmt)

    def read(self, start: float, end: float) -> list[AccessEntry]:
        lines: list[str] = []
        for container in self._containers():
            raw = container.logs(stdout=True, stderr=False, since=int(start) - 1)
            lines += raw.decode("utf-8", "replace").splitlines()
        return [e for e in parse_lines(lines, self.regex, self.classes) if start < e.time <= end]

    @staticmethod
    def p95(entries: Iterable[AccessEntry], category: str) -> tuple[float | None, int]:
        times = [e.request_time for e in entries if e.category == category]
        return quantile(times, 0.95), len(times)

    @staticmethod
    def error_share(entries: Iterable[AccessEntry], category: str) -> tuple[float | None, int]:
        statuses = [e.status for e in entries if e.category == category]
        if not statuses:
            return None, 0
        return sum(1 for s in statuses if s >= 500) / len(statuses), len(statuses)
