"""``rollback-drill watch``: the policy and the monitor pointed at any running stack.

What a team runs during the real deployment's two-hour window: a light probe load (the
target's traffic profile, at ``--rate``) against the stack's nginx on 127.0.0.1, the Docker
collectors when a Compose project is named, a baseline captured first (run it before
deploying), then a live table of every trigger's value against its threshold. The process
exits with :data:`EXIT_ROLLBACK` as soon as the monitor makes a rollback decision, 0 when
``--duration`` ends without one.

The target file is the drills' (``--target``): its traffic profile, and its users, whose
``${NAME}`` references are read from this process's environment (the deployment's own secrets,
never generated). Before the baseline, :func:`preflight` sends one request of every category
the profile has, through the same load code: a stack that does not answer as the profile
says (a login refused, a category failing) is refused in one line -- a baseline of failures
would make every later reading look healthy, or every one a rollback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from rollback_drill.baseline import Baseline
from rollback_drill.decisions import Decision
from rollback_drill.drill import BackgroundLoad
from rollback_drill.errors import StackError, TargetError
from rollback_drill.evaluator import RuleStatus
from rollback_drill.faults.probes import probe_loops
from rollback_drill.ledger import Ledger
from rollback_drill.load import LoadConfig
from rollback_drill.monitor import (
    LiveSource,
    Monitor,
    app_metrics_source,
    connection_failure_sources,
)
from rollback_drill.policy import Policy, load_policy
from rollback_drill.probe import probe
from rollback_drill.records import RecordStore
from rollback_drill.rollback.budgets import spec
from rollback_drill.rollback.choose import DeploymentState, choose_phases, phase_commands
from rollback_drill.signals.docker_events import DockerEventsCollector
from rollback_drill.signals.docker_stats import DockerStatsCollector
from rollback_drill.signals.redis_info import RedisInfoCollector
from rollback_drill.signals.tickets import TicketCollector
from rollback_drill.target import Target, interpolate, load_target
from rollback_drill.traffic import Category, Credentials
from rollback_drill.wait import wait_until

EXIT_ROLLBACK = 3  # distinct from argparse (2) and the errors (10-19, 20: port in use)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", type=Path, required=True, help="the target file (YAML)")
    parser.add_argument(
        "--base-url", required=True, help="the stack's nginx, http://127.0.0.1:PORT"
    )
    parser.add_argument(
        "--project", help="Compose project name: restarts, memory and PostgreSQL log signals"
    )
    parser.add_argument("--redis-port", type=int, help="a 127.0.0.1 port of the stack's Redis")
    parser.add_argument("--policy", type=Path, help="policy file (default: the shipped policy)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="compress windows (drills)")
    parser.add_argument("--rate", type=float, default=10.0, help="probe load, requests/s")
    parser.add_argument("--duration", type=float, default=7200.0, help="seconds to watch")
    parser.add_argument("--tickets", type=Path, help="a JSON-lines file of support tickets")
    parser.add_argument("--no-websocket", action="store_true", help="pre-hybrid: no WebSockets")
    parser.add_argument(
        "--postgres-port",
        type=int,
        help="a 127.0.0.1 port of the stack's PostgreSQL: the integrity probe reads the load's "
        "writes back (the target's database user and password from this environment)",
    )
    parser.add_argument(
        "--keep-watching",
        action="store_true",
        help="do not exit at the first rollback decision: print every decision until "
        "--duration ends (exit 3 then if any was a rollback)",
    )
    parser.add_argument(
        "--changed",
        default="code,config",
        help="what the deployment being watched changed (code, config, migrations; comma-"
        "separated): chooses the rollback phases printed on a rollback decision",
    )


def _resolve(target: Target, field: str, text: str) -> str:
    try:
        return interpolate(text, {**target.env.values, **os.environ})
    except KeyError as exc:
        raise TargetError(
            f"target {target.name}: {field} needs {exc.args[0]} in the environment"
        ) from None


def postgres_dsn(target: Target, port: int) -> str:
    """The target's database on 127.0.0.1:``port``, its credentials read from this
    environment (``database`` of the target file)."""
    db = target.database
    user = _resolve(target, "database.user", db.user)
    password = _resolve(target, "database.password", db.password)
    name = _resolve(target, "database.name", db.name)
    return f"postgresql://{user}:{password}@127.0.0.1:{port}/{name}"


def deployment_secrets(target: Target) -> list[str]:
    """The values of the target's secret variables found in this environment: none of them may
    appear in a response (the security probe)."""
    names = [*target.env.generated, *target.env.from_environment]
    return [os.environ[n] for n in names if os.environ.get(n)]


def changed(text: str) -> DeploymentState:
    parts = {p.strip() for p in text.split(",") if p.strip()}
    unknown = parts - {"code", "config", "migrations"}
    if unknown:
        raise TargetError(f"--changed: {', '.join(sorted(unknown))}: say code, config, migrations")
    return DeploymentState(
        code="code" in parts,
        config="config" in parts,
        migrations=("(applied by the deployment)",) if "migrations" in parts else (),
    )


def credentials(target: Target) -> tuple[Credentials, Credentials | None]:
    """The target's users, their ``${NAME}`` references read from this environment; the
    admin is optional (without it, no admin traffic)."""

    def resolve(field: str, text: str) -> str | None:
        return _resolve(target, field, text) or None

    u, a = target.users.user, target.users.admin
    user = Credentials(
        resolve("users.user.username", u.username) or "",
        resolve("users.user.password", u.password) or "",
    )
    try:
        admin = Credentials(
            resolve("users.admin.username", a.username) or "",
            resolve("users.admin.password", a.password) or "",
        )
    except TargetError:
        return user, None
    return user, admin


def preflight(target: Target, config: LoadConfig) -> list[str]:
    """Health 200 and one request of every enabled category answering as the profile says;
    :class:`StackError` naming what failed, else what was checked."""
    import httpx

    url = config.base_url.rstrip("/") + target.paths.health
    try:
        status = httpx.get(url, timeout=config.timeout_s).status_code
    except httpx.HTTPError as exc:
        raise StackError(f"watch refused: {url} did not answer ({type(exc).__name__})") from None
    if status != 200:
        raise StackError(f"watch refused: {url} answered {status}, not 200")
    wanted = [c for c in config.mix_weights() if c not in config.disabled]
    failed = probe(
        config.base_url,
        config.profile,
        config.user,
        config.staff,
        categories=wanted,
        timeout_s=config.timeout_s,
        connect_timeout_s=config.connect_timeout_s,
    ).failed()
    if failed:
        said = ", ".join(f"{c}: {why}" for c, why in failed.items())
        raise StackError(f"watch refused: the stack does not answer as the profile says ({said})")
    return [f"{target.paths.health} 200", *(f"{c.value} ok" for c in wanted)]


def status_table(rows: tuple[RuleStatus, ...], elapsed_s: float, decisions: int) -> Table:
    table = Table(title=f"rollback triggers — {elapsed_s:.0f} s watched, {decisions} decisions")
    for col in ("rule", "scope", "value", "samples", "condition", "state"):
        table.add_column(col)
    for r in rows:
        value = "—" if r.value is None else f"{r.value:.4g}"
        style = (
            "red" if "rollback" in r.state else ("yellow" if r.state not in ("ok", "idle") else "")
        )
        table.add_row(
            r.rule_id, str(r.scope), value, str(r.samples), r.condition, r.state, style=style
        )
    return table


def watch(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    policy: Policy = load_policy(args.policy).scaled(args.time_scale)
    target = load_target(args.target)
    user, staff = credentials(target)
    disabled = {Category.WEBSOCKET} if args.no_websocket else set()
    if staff is None:  # no staff credentials: no admin traffic
        disabled.add(Category.ADMIN)
    weights = {Category(c): w for c, w in target.traffic.categories.weights().items()}
    config = LoadConfig(
        args.base_url,
        rate=args.rate,
        user=user,
        profile=target.traffic,
        staff=staff,
        weights={c: w for c, w in weights.items() if c not in disabled},
    )
    for line in preflight(target, config):
        console.print(f"preflight: {line}")
    state = changed(args.changed)
    dsn = postgres_dsn(target, args.postgres_port) if args.postgres_port else None
    store, ledger = RecordStore(), Ledger()
    source = LiveSource(store, services=target.services.model_dump())
    loops = probe_loops(
        target,
        args.base_url,
        integrity=source.integrity,
        security=source.security,
        ledger=ledger,
        dsn=dsn,
        secrets=deployment_secrets(target),
        strict=False,  # the live view shows a probe's errors; watching goes on
    )
    with contextlib.ExitStack() as stack:
        app = app_metrics_source(source, target, args.base_url)
        if app is not None:
            stack.enter_context(app)
        if args.project:
            source.events = stack.enter_context(DockerEventsCollector(args.project))
            source.stats = stack.enter_context(DockerStatsCollector(args.project))
        if args.redis_port:
            source.redis = stack.enter_context(RedisInfoCollector(args.redis_port))
        postgres_log = connection_failure_sources(source, target, args.project)
        if postgres_log is not None:
            stack.enter_context(postgres_log)
        if args.tickets:
            source.tickets = stack.enter_context(TicketCollector(args.tickets, http=False))
        load = BackgroundLoad(config, store=store, ledger=ledger)
        stack.callback(load.stop)
        load.start()
        for loop in loops:
            stack.enter_context(loop)
        console.print(
            "probes: "
            + ", ".join(loop.name for loop in loops)
            + ("" if dsn else " (no integrity probe: give --postgres-port)")
        )
        if source.cache_source() is not None:
            console.print(f"cache hit rate from: {source.cache_source()}")
        console.print(f"connection failures from: {source.failure_source()}", markup=False)
        longest = policy.longest_baseline_window_s()
        console.print(f"capturing the baseline over {longest:.0f} s of traffic...")
        started = time.time()
        wait_until(
            lambda: time.time() - started >= longest, timeout_s=longest + 5, what="baseline window"
        )
        baseline = Baseline.capture(policy, source, time.time())
        for problem in baseline.problems():
            console.print(f"[yellow]baseline: {problem}[/yellow]")
        monitor = stack.enter_context(Monitor(policy, baseline, source))
        end = time.monotonic() + args.duration
        shown: dict[str, int] = {}
        said: list[Decision] = []
        announced = False
        console.print("baseline captured: watching", markup=False)
        with Live(console=console, refresh_per_second=1) as live:
            while time.monotonic() < end:
                rows = monitor.status()
                live.update(status_table(rows, time.time() - started, len(monitor.snapshot())))
                decisions = monitor.snapshot()
                for d in decisions[len(said) :]:
                    said.append(d)
                    console.print(
                        f"decision {d.trigger_id}: {d.kind.value} ({d.severity.value}) -- "
                        f"{d.message}",
                        markup=False,
                        highlight=False,
                    )
                rollback = next((d for d in decisions if d.is_rollback()), None)
                if rollback is not None and not announced:
                    announced = True
                    console.print(f"[bold red]ROLL BACK[/bold red]: {rollback.message}")
                    print_prescription(console, rollback, state, target, args.project)
                    if not args.keep_watching:
                        return EXIT_ROLLBACK
                for loop in loops:
                    if loop.errors and len(loop.errors) != shown.get(loop.name, 0):
                        shown[loop.name] = len(loop.errors)
                        console.print(
                            f"[yellow]{loop.name} probe: {len(loop.errors)} errors "
                            f"(no evidence either way), last: {loop.errors[-1]}[/yellow]"
                        )
                time.sleep(1.0)  # the live view's refresh period, not a readiness wait
    if announced:
        console.print("watch ended: a rollback was decided")
        return EXIT_ROLLBACK
    console.print("watch ended: no rollback decision")
    return 0


def print_prescription(
    console: Console,
    decision: Decision,
    state: DeploymentState,
    target: Target,
    project: str | None,
) -> None:
    """The plan's phases for ``decision`` (``rollback.choose``) and the first one's commands."""
    chosen = choose_phases(decision, state, target)
    console.print(f"prescribed phases: {chosen.describe()}")
    first = chosen.phases[0]
    console.print(f"Phase {first}, {spec(first).title} ({spec(first).budget_s:.0f} s):")
    for command in phase_commands(first, target, project or "<compose project>"):
        console.print(f"  {command}", markup=False, highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rollback-drill watch", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return watch(parser.parse_args(argv))


if __name__ == "__main__":
    import sys

    from rollback_drill.errors import DrillError

    try:
        sys.exit(main())
    except DrillError as exc:
        print(f"rollback-drill watch: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
