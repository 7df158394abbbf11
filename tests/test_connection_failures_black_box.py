"""The DB and Redis connection-failure triggers read black-box, for an app that names no failure
cause (``signals.connection_failures``): PostgreSQL's log and Redis INFO with the load's
outcomes. They fire on a connection failure PostgreSQL or Redis saw, never on a healthy stack
nor on a failure of another kind (a paused WSGI fails every request and refuses no
connection), and a recording of them replays exactly. No Docker: the collectors' series are
fed as their threads would."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from paths import REFERENCE_TARGET, REPO_ROOT

from rollback_drill.baseline import Baseline
from rollback_drill.decisions import DecisionKind
from rollback_drill.drills._observability import observability_gap
from rollback_drill.evaluator import Evaluator
from rollback_drill.metrics import Metric, Scope
from rollback_drill.monitor import LiveSource, Monitor, connection_failure_sources
from rollback_drill.policy import Policy, default_policy
from rollback_drill.recording import Recorder
from rollback_drill.records import Outcome, RecordStore, RequestRecord
from rollback_drill.replay import load_recording, replay
from rollback_drill.signals.connection_failures import db_failure_share, no_answer_spans
from rollback_drill.signals.postgres_log import PostgresLogCollector, classify, parse_lines
from rollback_drill.signals.redis_info import RedisInfoCollector, is_no_answer, is_rejection
from rollback_drill.signals.series import Clock, Sample
from rollback_drill.target import Target, load_target

T0 = 1_790_000_000.0
M0 = 5_000.0
EXAMPLE_TARGET = REPO_ROOT / "examples" / "notes" / "target.yaml"
EVERYWHERE = Scope.everywhere()
RATE = 20  # requests a second


def fixed_clock() -> Clock:
    """Wall T0 is monotonic M0, always (the mapping of every reading and sample)."""
    return Clock(monotonic=lambda: M0, wall=lambda: T0)


def mono(wall: float) -> float:
    return M0 + (wall - T0)


class FedLog(PostgresLogCollector):
    """PostgreSQL's log collector without its Docker poll: lines are fed as a poll would."""

    def _start(self) -> None:
        pass


def stamp(wall: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(wall, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def docker_log(lines: list[tuple[float, str]]) -> bytes:
    """``docker logs --timestamps`` output of PostgreSQL log lines at the given wall times."""
    return "".join(
        f"{stamp(at)} {stamp(at)[:10]} {stamp(at)[11:23]} UTC [{int(at * 100) % 99991}] {text}\n"
        for at, text in lines
    ).encode()


TOO_MANY = "FATAL:  sorry, too many clients already"


def load(
    store: RecordStore, start: float, end: float, outcome: Outcome = Outcome.OK, step: float = 0
) -> None:
    """``RATE`` requests a second completing in ``[start, end)``, all with ``outcome``."""
    n = int((end - start) * RATE)
    for i in range(n):
        ended = start + (i + 0.5) / RATE
        store.append(RequestRecord("crud", ended - 0.01, ended - 0.01, ended, 0.01, outcome))


def black_box(store: RecordStore, *, redis_info: bool = False) -> LiveSource:
    clock = fixed_clock()
    source = LiveSource(store, clock=clock, cause_header=False)
    source.postgres = FedLog("notes", "db", clock=clock, since=T0 - 600).start()
    if redis_info:
        source.redis = RedisInfoCollector(6399, clock=clock)
    return source


def decide(source: LiveSource, trigger: str, now: float) -> list[DecisionKind]:
    policy = default_policy()
    evaluator = Evaluator(policy, Baseline(()), deployed_at=T0 - 600)
    return [d.kind for d in evaluator.tick(now, source) if d.trigger_id == trigger]


# ---- PostgreSQL's log ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("FATAL:  sorry, too many clients already", "refused"),
        (
            "FATAL:  remaining connection slots are reserved for non-replication superuser "
            "connections",
            "refused",
        ),
        ('FATAL:  database "notes" is not currently accepting connections', "refused"),
        ("FATAL:  the database system is shutting down", "refused"),
        ("FATAL:  the database system is starting up", "refused"),
        ("FATAL:  terminating connection due to administrator command", "ended"),
        ('FATAL:  password authentication failed for user "notes"', None),
        ("LOG:  database system is ready to accept connections", None),
        ('ERROR:  relation "notes_note" does not exist', None),
        ("LOG:  statement: SELECT 'sorry, too many clients already'", None),
    ],
)
def test_which_postgresql_lines_are_connection_failures(line: str, reason: str | None) -> None:
    assert classify(f"2026-12-03 12:00:00.000 UTC [42] {line}") == reason


def test_each_log_line_counts_once_however_often_a_poll_reads_it_back() -> None:
    log = FedLog("notes", "db", clock=fixed_clock(), since=T0)
    raw = docker_log([(T0 + 1.2, TOO_MANY), (T0 + 1.7, TOO_MANY), (T0 + 2.0, "LOG:  checkpoint")])
    assert log.feed("c1", parse_lines(raw)) == 2
    assert log.feed("c1", parse_lines(raw)) == 0  # the next poll's overlap
    more = docker_log([(T0 + 1.7, TOO_MANY), (T0 + 3.0, TOO_MANY)])
    assert log.feed("c1", parse_lines(more)) == 1
    before = docker_log([(T0 - 5, TOO_MANY)])  # older than the collector: not its business
    assert log.feed("c2", parse_lines(before)) == 0
    assert log.count(mono(T0), mono(T0 + 2)) == 2
    assert log.count(mono(T0), mono(T0 + 4)) == 3


# ---- the database reading --------------------------------------------------------------------


def test_a_healthy_stack_reads_no_db_failure() -> None:
    store = RecordStore()
    load(store, T0, T0 + 60)
    source = black_box(store)
    reading = source.read(Metric.DB_CONNECTION_FAILURE_RATE, EVERYWHERE, 60, T0 + 60)
    assert (reading.value, reading.samples) == (0.0, 60 * RATE)
    assert decide(source, "db_connection_failures", T0 + 60) == []


def test_a_paused_wsgi_fails_every_request_and_is_no_db_failure() -> None:
    """Every request times out, PostgreSQL refuses nothing: the error rate's business."""
    store = RecordStore()
    load(store, T0, T0 + 60, Outcome.TIMEOUT)
    source = black_box(store)
    reading = source.read(Metric.DB_CONNECTION_FAILURE_RATE, EVERYWHERE, 60, T0 + 60)
    assert reading.value == 0.0
    assert decide(source, "db_connection_failures", T0 + 60) == []


def test_postgresql_refusing_the_apps_connections_is_a_db_failure_of_the_failed_share() -> None:
    store = RecordStore()
    load(store, T0, T0 + 20)
    load(store, T0 + 20, T0 + 60, Outcome.SERVER_ERROR)  # 40 s of 500s: two thirds
    source = black_box(store)
    assert source.postgres is not None
    refusals = [(T0 + 20 + i / RATE, TOO_MANY) for i in range(40 * RATE)]
    source.postgres.feed("c1", parse_lines(docker_log(refusals)))
    reading = source.read(Metric.DB_CONNECTION_FAILURE_RATE, EVERYWHERE, 60, T0 + 60)
    assert reading.value == pytest.approx(40 / 60)
    assert decide(source, "db_connection_failures", T0 + 60) == [DecisionKind.ROLLBACK]


def test_a_few_refused_connections_do_not_make_an_outage_a_db_failure() -> None:
    """nginx down (every request refused) while PostgreSQL turned away ten connections: ten
    requests at most are counted as DB failures, not the outage."""
    store = RecordStore()
    load(store, T0, T0 + 60, Outcome.CONNECT_ERROR)
    source = black_box(store)
    assert source.postgres is not None
    source.postgres.feed(
        "c1", parse_lines(docker_log([(T0 + 30 + i, TOO_MANY) for i in range(10)]))
    )
    reading = source.read(Metric.DB_CONNECTION_FAILURE_RATE, EVERYWHERE, 60, T0 + 60)
    assert reading.value == pytest.approx(10 / (60 * RATE))
    assert decide(source, "db_connection_failures", T0 + 60) == []


def test_the_share_is_bounded_by_both_the_failed_requests_and_the_refusals() -> None:
    store = RecordStore()
    load(store, T0, T0 + 10, Outcome.SERVER_ERROR)
    stats = store.window(None, T0, T0 + 10)
    assert db_failure_share(stats, 1_000) == (1.0, 10 * RATE)
    assert db_failure_share(stats, 50) == (50 / (10 * RATE), 10 * RATE)
    assert db_failure_share(store.window(None, T0 + 100, T0 + 110), 5) is None


def test_the_apps_header_is_preferred_where_the_target_has_one() -> None:
    store = RecordStore()
    load(store, T0, T0 + 60, Outcome.SERVER_ERROR)
    source = black_box(store)
    assert source.postgres is not None
    source.postgres.feed("c1", parse_lines(docker_log([(T0 + 1 + i, TOO_MANY) for i in range(50)])))
    source.cause_header = True  # the 500s name no cause: no DB failure by the header
    reading = source.read(Metric.DB_CONNECTION_FAILURE_RATE, EVERYWHERE, 60, T0 + 60)
    assert reading.value == 0.0


# ---- the Redis reading -----------------------------------------------------------------------


def info(source: LiveSource, wall: float, *, rejected: float | None, unreachable: bool) -> None:
    """One INFO sample as ``RedisInfoCollector.sample`` appends it."""
    assert source.redis is not None
    series, t = source.redis.series, mono(wall)
    if rejected is not None:
        series.append("rejected_connections", t, rejected)
    series.append("unreachable", t, 1.0 if unreachable else 0.0)


def test_redis_refusing_connections_at_maxclients_is_counted_from_info() -> None:
    store = RecordStore()
    load(store, T0, T0 + 60, Outcome.SERVER_ERROR)
    source = black_box(store, redis_info=True)
    for s in range(61):
        info(source, T0 + s, rejected=float(max(0, s - 30)), unreachable=False)
    assert source.redis is not None
    source.redis.series.append("own_rejections", mono(T0 + 40), 1.0)  # the sampler's own
    reading = source.read(Metric.REDIS_CONNECTION_FAILURES, EVERYWHERE, 60, T0 + 60)
    assert (reading.value, reading.samples) == (29.0, 60)
    assert decide(source, "redis_connection_failures", T0 + 60) == [DecisionKind.ROLLBACK]


def test_failed_requests_while_redis_answers_nothing_are_redis_failures() -> None:
    """Packets to Redis dropped (its own port): INFO times out like the app's commands; the
    requests failing meanwhile are counted, those before the run of lost samples are not."""
    store = RecordStore()
    load(store, T0, T0 + 40, Outcome.TIMEOUT)  # failing for another reason first
    load(store, T0 + 40, T0 + 60, Outcome.SERVER_ERROR)
    source = black_box(store, redis_info=True)
    for s in range(61):
        info(source, T0 + s, rejected=0.0 if s < 40 else None, unreachable=s >= 40)
    reading = source.read(Metric.REDIS_CONNECTION_FAILURES, EVERYWHERE, 60, T0 + 60)
    assert reading.value == 20 * RATE  # T0+40 .. T0+60, whole seconds
    assert decide(source, "redis_connection_failures", T0 + 60) == [DecisionKind.ROLLBACK]


def test_a_lone_lost_info_sample_makes_no_redis_failure_of_a_paused_wsgi() -> None:
    """A paused WSGI fails every request; Redis answers every INFO but two lost on a busy
    host (not three in a row): no Redis failure."""
    store = RecordStore()
    load(store, T0, T0 + 60, Outcome.TIMEOUT)
    source = black_box(store, redis_info=True)
    for s in range(61):
        lost = s in (20, 21, 45)
        info(source, T0 + s, rejected=None if lost else 3.0, unreachable=lost)
    reading = source.read(Metric.REDIS_CONNECTION_FAILURES, EVERYWHERE, 60, T0 + 60)
    assert reading.value == 0.0
    assert decide(source, "redis_connection_failures", T0 + 60) == []


def test_runs_of_unanswered_samples() -> None:
    samples = [Sample(float(t), float(v)) for t, v in enumerate([1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1])]
    assert no_answer_spans(samples) == [(3.0, 5.0), (7.0, 10.0)]
    assert no_answer_spans(samples, run=5) == []


def test_why_an_info_failed() -> None:
    assert is_rejection(redis.ConnectionError("max number of clients reached"))
    assert not is_no_answer(redis.ConnectionError("max number of clients reached"))
    assert is_no_answer(redis.TimeoutError("Timeout reading from socket"))
    assert is_no_answer(redis.ConnectionError("Error 111 connecting. Connection refused."))
    assert not is_no_answer(redis.BusyLoadingError("Redis is loading"))
    assert not is_no_answer(redis.AuthenticationError("invalid password"))


# ---- the target's sources, observability, replay ---------------------------------------------


def example_target(**signals: object) -> Target:
    target = load_target(EXAMPLE_TARGET)
    return target.model_copy(
        update={"signals": target.signals.model_copy(update=signals)} if signals else {}
    )


def test_the_sources_come_from_the_targets_fields() -> None:
    example = LiveSource(RecordStore())
    log = connection_failure_sources(example, example_target(), "rbd-x")
    assert log is not None and (log.project, log.service) == ("rbd-x", "db")
    assert not example.cause_header and example.postgres is log
    reference = LiveSource(RecordStore())
    assert connection_failure_sources(reference, load_target(REFERENCE_TARGET), "rbd-y") is None
    assert reference.cause_header and reference.postgres is None
    assert reference.failure_source() == "the app's failure-cause answer header"
    off = LiveSource(RecordStore())
    assert connection_failure_sources(off, example_target(postgres_log=False), "rbd-z") is None
    assert "nothing" in off.failure_source()


def test_the_example_stack_drills_both_triggers_unless_postgresql_logs_elsewhere() -> None:
    policy: Policy = default_policy()
    target = example_target()
    assert observability_gap(target, policy, "db_connection_failures", "postgres") is None
    assert observability_gap(target, policy, "redis_connection_failures", "redis") is None
    off = example_target(postgres_log=False)
    why = observability_gap(off, policy, "db_connection_failures", "postgres")
    assert why is not None and "signals.postgres_log: false" in why
    assert observability_gap(off, policy, "redis_connection_failures", "redis") is None


def test_a_black_box_recording_replays_exactly(tmp_path: Path) -> None:
    """The PostgreSQL log's and Redis INFO's series are recorded with the readings' mode: the
    replay decides what the run decided, at the same ticks, with the same values."""
    policy = default_policy().scaled(10.0)  # 60-s windows: 6 s
    recorder = Recorder()
    store = recorder.store()
    clock = fixed_clock()
    source = LiveSource(store, clock=clock, cause_header=False)
    source.postgres = FedLog("notes", "db", clock=clock, since=T0 - 60)
    source.redis = RedisInfoCollector(6399, clock=clock)
    recorder.attach(source)
    source.postgres.start()
    load(store, T0 - 30, T0)
    for s in range(-30, 1):
        info(source, T0 + s, rejected=0.0, unreachable=False)
    baseline = recorder.capture_baseline(policy, source, T0)
    source.not_before = T0
    monitor = Monitor(policy, baseline, source)
    monitor.recorder = recorder
    recorder.monitor_started(policy, T0)
    for s in range(1, 13):
        at = T0 + s
        failing = s > 4
        load(store, at - 1, at, Outcome.SERVER_ERROR if failing else Outcome.OK)
        info(source, at, rejected=float(max(0, s - 4) * 3), unreachable=False)
        if failing:
            lines = [(at - 1 + i / RATE, TOO_MANY) for i in range(RATE)]
            source.postgres.feed("c1", parse_lines(docker_log(lines)))
        monitor.tick(at + 0.001)
    kinds = {(d.trigger_id, d.kind) for d in monitor.decisions}
    assert ("db_connection_failures", DecisionKind.ROLLBACK) in kinds
    assert ("redis_connection_failures", DecisionKind.ROLLBACK) in kinds
    path = tmp_path / "black-box.json.gz"
    recorder.write(path)
    result = replay(load_recording(path))
    assert result.rows() == result.recorded_rows()
    assert result.same


@pytest.mark.parametrize(
    ("name", "trigger"),
    [
        ("db_connection_failures-postgres_exhausted", "db_connection_failures"),
        ("redis_connection_failures-redis_exhausted", "redis_connection_failures"),
        ("redis_connection_failures-packets_dropped", "redis_connection_failures"),
    ],
)
def test_the_example_stacks_recorded_drills_decide_from_the_black_box_series(
    name: str, trigger: str
) -> None:
    """The committed recordings of the example stack's rows (no failure-cause header): their
    replay decides the trigger from the black-box series; read as if from the header (which
    the example's app does not send), the same data decide nothing of it."""
    from rollback_drill.replay import Recording

    path = (
        REPO_ROOT
        / "tests"
        / "data"
        / "recordings"
        / (f"test_infrastructure-test_infrastructure_fault_{name}.json.gz")
    )
    rec = load_recording(path)
    assert rec.data["cause_header"] is False
    decided = {d.trigger_id for _, d in replay(rec).decisions}
    assert trigger in decided
    as_header = Recording(path, {**rec.data, "cause_header": True})
    assert trigger not in {d.trigger_id for _, d in replay(as_header).decisions}


def test_a_bad_postgres_log_field_is_one_line_naming_it(tmp_path: Path) -> None:
    from rollback_drill.errors import TargetError

    text = REFERENCE_TARGET.read_text()
    assert "\nsignals:\n" in text
    path = tmp_path / "t.yaml"
    compose = str(REFERENCE_TARGET.parent.parent / "compose")
    path.write_text(
        text.replace("../compose", compose).replace(
            "\nsignals:\n", "\nsignals:\n  postgres_log: sometimes\n"
        )
    )
    with pytest.raises(TargetError) as caught:
        load_target(path)
    message = str(caught.value)
    assert "field 'signals.postgres_log'" in message and "\n" not in message
