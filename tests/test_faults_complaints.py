"""Support tickets filed through the ticket signal's two outside inputs (HTTP and file)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rollback_drill.errors import TargetError
from rollback_drill.faults import TicketSpike
from rollback_drill.journal import Journal
from rollback_drill.signals.tickets import TicketCollector
from rollback_drill.wait import wait_until


def test_tickets_over_http_are_counted_once() -> None:
    with TicketCollector() as collector:
        spike = TicketSpike(count=11, url=collector.url, journal=Journal())
        spike.apply()
        assert spike.verify_effect(timeout_s=5).measured == 11
        assert collector.count() == 11
        spike.revert()  # filed tickets stay filed
        spike.revert()
        assert collector.count() == 11
        assert len({t.id for t in collector.tickets}) == 11


def test_tickets_through_the_file_input(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    with TicketCollector(path, http=False, poll_interval=0.02) as collector:
        spike = TicketSpike(count=3, path=path, counter=collector.count)
        spike.apply()
        wait_until(lambda: collector.count() == 3, timeout_s=5, what="3 tickets read")
        assert spike.verify_effect(timeout_s=5).seen
    assert len(path.read_text().splitlines()) == 3


def test_ticket_times_are_when_they_were_filed() -> None:
    with TicketCollector() as collector:
        before = collector.clock.now()
        TicketSpike(count=2, url=collector.url, spacing_s=0.05).apply()
        times = [t.t for t in collector.tickets]
        assert all(before - 1 <= t <= collector.clock.now() for t in times)
        assert times[1] - times[0] >= 0.04


def test_parameters() -> None:
    with pytest.raises(ValueError, match="count"):
        TicketSpike(count=0, url="http://127.0.0.1:1/tickets")
    with pytest.raises(ValueError, match="exactly one"):
        TicketSpike(count=1)
    with pytest.raises(ValueError, match="counter"):
        TicketSpike(count=1, path=Path("/tmp/x.jsonl"))
    with pytest.raises(TargetError):
        TicketSpike(count=1, url="http://192.0.2.1:80/tickets")
    assert time.time() > 0
