"""Polling with a deadline: the only way this project waits for anything.

After testcontainers' ``wait_strategies``: a condition is polled at an interval until it holds
or the deadline passes; the timeout error names what was awaited, the last value seen and a
hint. Transient exceptions raised by the probe count as "not yet" and are reported as the last
value. A caller that knows where to look passes ``diagnose`` (for example the last log lines of
the service awaited): its answer, read at the timeout, follows the error's first line, which
stays the one-line cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from rollback_drill.errors import StackError

T = TypeVar("T")


class WaitTimeout(StackError):
    """A polled condition did not hold before its deadline."""


def wait_for(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.25,
    hint: str = "",
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until ``done(value)``; return that value or raise :class:`WaitTimeout`.

    ``diagnose`` is called once, at the timeout; what it returns (log lines) is appended to the
    error below its first line. A diagnosis that fails itself is named, not raised."""
    deadline = time.monotonic() + timeout_s
    last: object = "nothing yet"
    while True:
        try:
            value = probe()
            if done(value):
                return value
            last = value
        except Exception as exc:  # a probe's transient failure is "not yet"
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            msg = f"waited {timeout_s:.0f} s for {what}; last seen: {str(last)[:300]}"
            raise WaitTimeout(msg + (f" ({hint})" if hint else "") + _diagnosis(diagnose))
        time.sleep(interval_s)


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.25,
    hint: str = "",
    diagnose: Callable[[], str] | None = None,
) -> None:
    """Poll a boolean condition until it holds (see :func:`wait_for`)."""
    wait_for(
        condition,
        bool,
        timeout_s=timeout_s,
        what=what,
        interval_s=interval_s,
        hint=hint,
        diagnose=diagnose,
    )


def _diagnosis(diagnose: Callable[[], str] | None, max_lines: int = 40) -> str:
    if diagnose is None:
        return ""
    try:
        text = diagnose()
    except Exception as exc:
        return f"\n(diagnosis failed: {type(exc).__name__}: {exc})"
    lines = [ln for ln in text.splitlines() if ln.strip()][-max_lines:]
    return ("\n" + "\n".join(lines)) if lines else ""
