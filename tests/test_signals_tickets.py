"""Support tickets through the tailed JSON-lines file and through POST /tickets (no Docker)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from rollback_drill.errors import TargetError
from rollback_drill.signals.base import Collector
from rollback_drill.signals.tickets import TicketCollector, ticket_epoch
from rollback_drill.wait import wait_for
from tests.slew import HOUR_S, SlewingTime


def line(**fields: object) -> str:
    return json.dumps(fields) + "\n"


def test_ticket_epoch_formats() -> None:
    assert ticket_epoch(1_700_000_000) == 1_700_000_000.0
    assert ticket_epoch("1700000000.5") == 1_700_000_000.5
    assert ticket_epoch("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert ticket_epoch("2023-11-14T23:13:20+01:00") == 1_700_000_000.0
    assert ticket_epoch("2023-11-14T22:13:20") == 1_700_000_000.0  # naive = UTC
    for bad in (True, None, "yesterday", float("nan"), [1]):
        with pytest.raises(ValueError):
            ticket_epoch(bad)


def test_file_tickets_are_counted_at_their_own_time(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    now = datetime.now(UTC)
    old = (now - timedelta(hours=2)).isoformat()
    path.write_text(
        line(time=old, id="t-old", subject="old")
        + line(time=now.timestamp(), id="t1", subject="cannot log in")
        + "not json\n"
        + line(time=now.isoformat(), id="t1", subject="same id again")
        + "\n"
    )
    with TicketCollector(path, http=False, poll_interval=0.02) as tickets:
        wait_for(
            lambda: len(tickets.tickets),
            lambda n: n == 2,
            timeout_s=10,
            what="2 tickets from the file",
            interval_s=0.02,
        )
        # a line without its newline yet is not read; it is once completed
        with path.open("a") as f:
            f.write(f'{{"time": {now.timestamp()!r}, "id": "t2", ')
            f.flush()
            time.sleep(0.1)  # several poll intervals: the half line must stay unread
            assert len(tickets.tickets) == 2
            f.write('"subject": "slow"}\n')
        wait_for(
            lambda: len(tickets.tickets),
            lambda n: n == 3,
            timeout_s=10,
            what="the completed line",
            interval_s=0.02,
        )
        now_t = tickets.clock.now()
        assert tickets.count(now_t - 3600, now_t + 60) == 2  # the 2-hour-old one is outside
        assert tickets.count() == 3
        assert tickets.series.get("ticket_duplicates").count() == 1
        assert tickets.series.get("ticket_rejects").count() == 1
        assert any("line 3" in e for e in tickets.errors.values())
        assert {t.subject for t in tickets.tickets} == {"old", "cannot log in", "slow"}


def test_file_created_later_and_truncated(tmp_path: Path) -> None:
    path = tmp_path / "later.jsonl"
    with TicketCollector(path, http=False, poll_interval=0.02) as tickets:
        path.write_text(line(id="a") + line(id="b"))
        wait_for(
            lambda: tickets.count(),
            lambda n: n == 2,
            timeout_s=10,
            what="tickets a, b",
            interval_s=0.02,
        )
        path.write_text(line(id="c"))  # truncated and rewritten: read again from its start
        wait_for(
            lambda: tickets.count(),
            lambda n: n == 3,
            timeout_s=10,
            what="ticket c after truncation",
            interval_s=0.02,
        )
        assert tickets.errors.values() == []


def test_http_post_one_and_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(line(id="f1"))
    with TicketCollector(path, poll_interval=0.02) as tickets, httpx.Client() as http:
        assert tickets.url.startswith("http://127.0.0.1:")
        wait_for(
            lambda: tickets.count(),
            lambda n: n == 1,
            timeout_s=10,
            what="the file's ticket",
            interval_s=0.02,
        )
        r = http.post(tickets.url, json={"time": time.time(), "id": "h1", "subject": "500s"})
        assert r.status_code == 201
        assert r.json() == {"accepted": 1, "duplicates": 0, "rejected": 0}
        batch = [{"id": "h2"}, {"id": "h1"}, {"id": "f1"}, {"time": "soon"}, "text"]
        r = http.post(tickets.url, json=batch)
        assert r.status_code == 400
        assert r.json() == {"accepted": 1, "duplicates": 2, "rejected": 2}
        assert http.post(tickets.url, content=b"{nope").status_code == 400
        assert http.post(tickets.url.replace("/tickets", "/other"), json={}).status_code == 404
        assert http.get(tickets.url).json() == {"count": 3}
        assert tickets.count() == 3
        assert sorted(t.source for t in tickets.tickets) == ["file line 1", "http", "http"]


def test_more_than_ten_tickets_in_an_hour_are_visible_in_one_window() -> None:
    # the process's own clock (anchored at import): a ticket stamped "now" maps to now however
    # old the process is and however the wall clock slews
    with TicketCollector() as tickets, httpx.Client() as http:
        base = time.time()
        r = http.post(tickets.url, json=[{"id": i, "time": base - 60 * i} for i in range(11)])
        assert r.status_code == 201
        end = tickets.clock.now()
        assert tickets.count(end - 3600, end) == 11
        # only the ticket stamped "now" is in the last half minute (the others are 60 s apart)
        assert tickets.count(end - 30, end) == 1


def test_tickets_stamped_over_the_last_hour_are_counted_after_an_hour_of_slew(
    tmp_path: Path,
) -> None:
    """The wall clock 0.5 % fast, the collector an hour old: the eleven tickets of the last hour,
    the newest stamped now, are all in the hour's window ending now (the mapping taken once at
    the start put the newest 18 s past its end: 10 counted)."""
    time_ = SlewingTime()
    tickets = TicketCollector(tmp_path / "tickets.jsonl", http=False, clock=time_.clock())
    time_.advance(HOUR_S)
    base = time_.wall()
    results = [tickets.add({"id": i, "time": base - 60 * i}) for i in range(11)]
    assert results == ["accepted"] * 11
    end = tickets.clock.now()
    assert tickets.count(end - HOUR_S, end) == 11
    assert tickets.count(end - 30, end) == 1


def test_needs_a_source_and_loopback() -> None:
    with pytest.raises(ValueError):
        TicketCollector(http=False)
    with pytest.raises(TargetError, match="loopback"):
        TicketCollector(host="0.0.0.0")


def test_stop_is_idempotent_and_frees_the_port() -> None:
    tickets = TicketCollector().start()
    url = tickets.url
    tickets.stop()
    tickets.stop()
    assert not tickets.running
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json={"id": 1}, timeout=2)
    with pytest.raises(RuntimeError, match="create a new collector"):
        tickets.start()


def test_a_failing_thread_becomes_an_error_sample() -> None:
    class Broken(Collector):
        kind = "broken"

        def _start(self) -> None:
            self.spawn("boom", self._boom)

        def _boom(self) -> None:
            raise OSError("disk on fire\nsecond line")

    with Broken() as broken:
        wait_for(
            lambda: broken.errors.values(),
            bool,
            timeout_s=10,
            what="an error sample",
            interval_s=0.02,
        )
    assert broken.errors.values() == ["broken boom: OSError: disk on fire"]
    assert broken.cpu_seconds() >= 0
