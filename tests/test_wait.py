from __future__ import annotations

import itertools

import pytest

from rollback_drill.wait import WaitTimeout, wait_for, wait_until


def test_returns_the_value_that_satisfied() -> None:
    counter = itertools.count()
    assert (
        wait_for(lambda: next(counter), lambda v: v >= 3, timeout_s=5, what="x", interval_s=0.001)
        == 3
    )


def test_timeout_names_what_and_last_value_and_hint() -> None:
    with pytest.raises(WaitTimeout, match=r"waited 0 s for the thing; last seen: 7 \(look here\)"):
        wait_for(
            lambda: 7,
            lambda v: v > 7,
            timeout_s=0.05,
            what="the thing",
            interval_s=0.01,
            hint="look here",
        )


def test_probe_exceptions_are_not_yet() -> None:
    calls = itertools.count()

    def probe() -> bool:
        if next(calls) < 2:
            raise ConnectionError("refused")
        return True

    wait_until(probe, timeout_s=5, what="probe", interval_s=0.001)
    with pytest.raises(WaitTimeout, match="ConnectionError: down"):
        wait_until(
            lambda: (_ for _ in ()).throw(ConnectionError("down")),
            timeout_s=0.02,
            what="p",
            interval_s=0.01,
        )
