"""The fault protocol: apply, prove the effect, revert -- each step a journal event.

A fault is one injected cause. Its life::

    fault.apply()            # journal: fault <name> phase=start, family, params
    fault.verify_effect()    # journal: fault <name> phase=verified, measured; FaultError if unseen
    ...                      # the drill watches the monitor
    fault.revert()           # journal: fault <name> phase=end, duration_s

``apply`` and ``revert`` are idempotent: applying an applied fault, reverting a reverted (or
never applied) one does nothing, so a drill's ``finally`` may revert whatever happened. If
``apply`` fails half way, what was done is reverted before the :class:`FaultError` propagates.
A fault whose effect cannot be seen is a failed injection, never a pass: ``verify_effect``
polls the fault's own observation until it shows the effect or raises.

``live_at`` is the wall-clock time from which the effect is on the traffic (for a faulty
release: when its containers serve, or when nginx routes to them); time to detect is measured
from it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

from rollback_drill.errors import FaultError
from rollback_drill.journal import Journal

__all__ = ["BaseFault", "Effect", "Family", "Fault", "injected"]

Family = Literal["release", "infrastructure", "signal"]


@dataclass(frozen=True)
class Effect:
    """What a fault's observation saw: ``seen`` says whether the effect is there."""

    seen: bool
    measured: Any
    expected: str
    detail: str = ""

    def line(self) -> str:
        verdict = "seen" if self.seen else "NOT seen"
        extra = f" ({self.detail})" if self.detail else ""
        return f"effect {verdict}: measured {self.measured!r}, expected {self.expected}{extra}"


@runtime_checkable
class Fault(Protocol):
    name: str

    @property
    def family(self) -> Family: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def applied(self) -> bool: ...

    @property
    def live_at(self) -> float | None: ...

    def apply(self) -> None: ...

    def revert(self) -> None: ...

    def abandon(self, why: str) -> None: ...

    def verify_effect(self, timeout_s: float = 30.0) -> Effect: ...


@dataclass
class _State:
    applied: bool = False
    started: float | None = None  # monotonic, for the duration
    live_at: float | None = None
    effect: Effect | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)


class BaseFault(ABC):
    """Journaling, idempotence and effect polling around a fault's three primitives.

    Subclasses implement :meth:`_apply`, :meth:`_revert` (must tolerate a half-applied
    state) and :meth:`observe` (one look at the effect, never raising for "not yet").
    """

    family: ClassVar[Family]
    verify_interval_s: ClassVar[float] = 0.5

    def __init__(self, name: str, journal: Journal | None, params: Mapping[str, Any]) -> None:
        self.name = name
        self.journal = journal
        self._params = dict(params)
        self._state = _State()

    # ---- the protocol ----------------------------------------------------------------------
    @property
    def params(self) -> Mapping[str, Any]:
        return dict(self._params)

    @property
    def applied(self) -> bool:
        return self._state.applied

    @property
    def live_at(self) -> float | None:
        return self._state.live_at

    @property
    def effect(self) -> Effect | None:
        """The last observation :meth:`verify_effect` made, if any."""
        return self._state.effect

    def apply(self) -> None:
        with self._state.lock:
            if self._state.applied:
                return
            self._event("start", family=self.family, params=self._params)
            self._state.started = time.monotonic()
            try:
                live = self._apply()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    self._revert()
                self._event("end", status="failed", error=f"{type(exc).__name__}: {exc}")
                if isinstance(exc, FaultError | KeyboardInterrupt):
                    raise
                raise FaultError(f"fault {self.name} could not be applied: {exc}") from exc
            self._state.applied = True
            self._state.live_at = live if live is not None else time.time()
            self._event("live", at=self._state.live_at)

    def revert(self) -> None:
        with self._state.lock:
            if not self._state.applied:
                return
            try:
                self._revert()
            except BaseException as exc:
                self._event("end", status="revert failed", error=f"{type(exc).__name__}: {exc}")
                raise
            self._state.applied = False
            started = self._state.started or time.monotonic()
            self._event("end", status="reverted", duration_s=round(time.monotonic() - started, 3))

    def abandon(self, why: str) -> None:
        """Leave the fault in place for good (its target is about to be discarded, e.g. a
        drill's throwaway stack): journal its end without undoing it; revert becomes a no-op."""
        with self._state.lock:
            if not self._state.applied:
                return
            self._state.applied = False
            started = self._state.started or time.monotonic()
            self._event(
                "end", status="abandoned", why=why, duration_s=round(time.monotonic() - started, 3)
            )

    def verify_effect(self, timeout_s: float = 30.0) -> Effect:
        """Poll :meth:`observe` until the effect is seen; :class:`FaultError` if it never is."""
        if not self._state.applied:
            raise FaultError(f"fault {self.name}: verify_effect before apply")
        deadline = time.monotonic() + timeout_s
        last: Effect | None = None
        while True:
            try:
                last = self.observe()
            except Exception as exc:  # a probe's transient failure is "not yet"
                last = Effect(False, f"{type(exc).__name__}: {exc}", "an observation")
            if last.seen or time.monotonic() >= deadline:
                break
            time.sleep(self.verify_interval_s)
        self._state.effect = last
        self._event(
            "verified" if last.seen else "unverified",
            measured=last.measured,
            expected=last.expected,
            detail=last.detail,
        )
        if not last.seen:
            raise FaultError(f"fault {self.name}: no effect after {timeout_s:.0f} s: {last.line()}")
        return last

    # ---- for subclasses --------------------------------------------------------------------
    @abstractmethod
    def _apply(self) -> float | None:
        """Inject; return when the effect went live (wall time), or None for "now"."""

    @abstractmethod
    def _revert(self) -> None:
        """Undo; must cope with a half-applied fault and with a target that went away."""

    @abstractmethod
    def observe(self) -> Effect:
        """One look at the effect (cheap; no waiting)."""

    def _event(self, phase: str, **data: Any) -> None:
        if self.journal is not None:
            self.journal.event("fault", self.name, phase=phase, **data)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({self.name!r}, {args})"


F = TypeVar("F", bound=Fault)


@contextlib.contextmanager
def injected(fault: F, *, verify: bool = True, timeout_s: float = 30.0) -> Iterator[F]:
    """Apply ``fault`` (and prove its effect); revert it on exit, whatever happened."""
    try:
        fault.apply()
        if verify:
            fault.verify_effect(timeout_s)
        yield fault
    finally:
        fault.revert()
