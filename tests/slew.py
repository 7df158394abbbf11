"""A fake time source for :class:`~rollback_drill.signals.series.Clock`: a monotonic clock the
test advances, and a wall clock that runs at another rate against it, as NTP slews one.

The CI VM's wall clock was measured running 0.5 % fast against its monotonic clock
(``time.time()`` and ``time.monotonic()`` over the same ``time.sleep``): ``SLEW`` is that rate.
"""

from __future__ import annotations

from rollback_drill.signals.series import Clock

SLEW = 0.005  # the wall clock's excess rate seen on the CI VM
HOUR_S = 3600.0


class SlewingTime:
    """``monotonic()`` starts at ``mono0`` and moves only with :meth:`advance`; ``wall()`` starts
    at ``wall0`` and moves ``1 + slew`` times as far."""

    def __init__(
        self, slew: float = SLEW, *, mono0: float = 5_000.0, wall0: float = 1_700_000_000.0
    ) -> None:
        self.slew = slew
        self.mono0 = mono0
        self.wall0 = wall0
        self.mono = mono0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall0 + (self.mono - self.mono0) * (1.0 + self.slew)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of monotonic time pass."""
        self.mono += seconds

    def clock(self) -> Clock:
        """A clock on this time source (its first mapping taken now)."""
        return Clock(monotonic=self.monotonic, wall=self.wall)
