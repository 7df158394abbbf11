"""The instrument's own stop-the-world pauses: garbage collections of the drill process.

The load generator, the monitor and the collectors share one process, and a collection of
CPython's oldest generation holds the GIL for as long as it walks every tracked object: the
load's event loop stands still meanwhile, and every request due in that time is measured late
(latency counts from the schedule). Such a pause is the instrument's, not the stack's; a
drill's report says when and how long each one was (``GcPauses.pauses``), so that a P95 spike
can be told apart from a slow stack. Measured with ``gc.callbacks`` (the standard library's
own hook, called at the start and the end of every collection).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Pause:
    at: float  # epoch seconds, start of the collection
    duration_s: float
    generation: int
    collected: int


class GcPauses:
    """Collections of this process lasting at least ``min_s``, while started."""

    KEEP: Final = 1000

    def __init__(self, min_s: float = 0.01) -> None:
        self.min_s = min_s
        self.pauses: list[Pause] = []
        self.collections = 0
        self.longest_s = 0.0
        self._began: float | None = None  # callbacks run under the GIL, never nested

    def start(self) -> GcPauses:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
            return
        began, self._began = self._began, None
        if began is None:
            return
        took = now - began
        self.collections += 1
        self.longest_s = max(self.longest_s, took)
        if took >= self.min_s and len(self.pauses) < self.KEEP:
            at = time.time() - took
            self.pauses.append(Pause(at, took, int(info["generation"]), int(info["collected"])))
