"""Benchmark: our LoadGenerator vs Locust (FastHttpUser), side by side, in one run.

Not a test: a script whose numbers go into bench/README.md::

    .venv/bin/python bench/load_vs_locust.py --reps 3

(a) **Requests per second per CPU core.** One fast target (``bench/fast_server.py``, its own
    process) on 127.0.0.1. Each contender runs as its own process; after a warm-up the script
    samples, over the same steady window, the target's request counter (a neutral count of
    what was really served) and the contender's CPU time (``psutil``: user + system, children
    included). requests/s per core = served requests / CPU-seconds. Contenders:

    - ``ours@R``: the generator at a fixed rate R (open model, on schedule), on asyncio and
      on uvloop;
    - ``ours@max``: offered 10 x R, i.e. saturated (the schedule slips; throughput only);
    - ``locust@R``: Locust paced at R in total (``constant_throughput``);
    - ``locust@max``: Locust with no wait time (its maximum).

    The order of contenders rotates between repetitions; medians are reported.

(b) **P95 accuracy.** A second target answers every request after a known, fixed delay
    (``--delay-ms``, default 50 ms). The generator runs at a moderate rate; its P95 (from its
    HdrHistogram record store) is compared with the known delay and with the P95 the target
    itself measured (the delay as really slept, which includes its own timer lateness).

Everything stays on 127.0.0.1; every child process is bounded in time and killed if late.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
LOCUST = str(Path(sys.executable).with_name("locust"))
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


_NICE = 0  # --nice: priority of every child process (target and contenders alike)


def _renice() -> None:
    if _NICE:
        os.nice(_NICE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stats(url: str, reset: bool = False) -> dict[str, int | None]:
    request = urllib.request.Request(url + ("/__reset" if reset else "/__stats"), method="GET")
    with _OPENER.open(request, timeout=5) as response:
        data: dict[str, int | None] = json.loads(response.read())
        return data


@contextlib.contextmanager
def target(delay_ms: float = 0.0) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [PYTHON, str(HERE / "fast_server.py"), "--port", str(port), "--delay-ms", str(delay_ms)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_renice
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _stats(url)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"target on {url} did not answer within 10 s") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Sample:
    name: str
    req_s: float
    cpu_util: float
    output: str

    @property
    def per_core(self) -> float:
        return self.req_s / self.cpu_util if self.cpu_util else 0.0


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def measure(
    name: str, cmd: list[str], url: str, warmup_s: float, measure_s: float, env: dict[str, str]
) -> Sample:
    """Run ``cmd``; over a steady window, served requests / wall time and CPU / wall time."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
        preexec_fn=_renice,
    )
    try:
        ps = psutil.Process(proc.pid)
        start = _stats(url)["requests"] or 0
        deadline = time.monotonic() + 30
        while (_stats(url)["requests"] or 0) == start:  # sending has begun
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{name} sent nothing within 30 s")
            time.sleep(0.05)
        time.sleep(warmup_s)
        count0, cpu0, t0 = _stats(url)["requests"] or 0, _cpu(ps), time.perf_counter()
        time.sleep(measure_s)
        count1, cpu1, t1 = _stats(url)["requests"] or 0, _cpu(ps), time.perf_counter()
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = t1 - t0
    return Sample(name, (count1 - count0) / wall, (cpu1 - cpu0) / wall, output or "")


def _ours(
    url: str,
    rate: float,
    duration: float,
    uvloop: bool,
    loop_timers: bool = False,
    spin_ms: float = 0.0,
) -> list[str]:
    cmd = [PYTHON, str(HERE / "run_generator.py"), "--url", url, "--rate", str(rate)]
    cmd += ["--duration", str(duration), *(["--uvloop"] if uvloop else [])]
    cmd += ["--spin-ms", str(spin_ms)] if spin_ms else []
    return [*cmd, *(["--loop-timers"] if loop_timers else [])]


def _locust(url: str, users: int, run_s: float) -> list[str]:
    return [
        LOCUST,
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users * 10),
        "--run-time",
        f"{int(run_s)}s",
        "-f",
        str(HERE / "locust_bench.py"),
        "--host",
        url,
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]


def throughput(args: argparse.Namespace) -> dict[str, list[Sample]]:
    run_s = args.warmup + args.measure + 4
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    paced = {**env, "BENCH_USER_RATE": str(args.rate / args.users)}
    flat = {**env, "BENCH_USER_RATE": "0"}
    r = args.rate
    results: dict[str, list[Sample]] = {}
    with target() as url:
        contenders = [
            (f"ours@{r:g} asyncio", _ours(url, r, run_s, False), env),
            (f"ours@{r:g} uvloop", _ours(url, r, run_s, True), env),
            (f"ours@{r:g} uvloop loop-timers", _ours(url, r, run_s, True, True), env),
            ("ours@max uvloop", _ours(url, 10 * r, run_s, True), env),
            (f"locust@{r:g}", _locust(url, args.users, run_s), paced),
            ("locust@max", _locust(url, args.users, run_s), flat),
        ]
        for rep in range(args.reps):
            shift = rep % len(contenders)
            for name, cmd, cenv in contenders[shift:] + contenders[:shift]:
                sample = measure(name, cmd, url, args.warmup, args.measure, cenv)
                results.setdefault(name, []).append(sample)
                print(
                    f"  rep {rep + 1} {name:22s} {sample.req_s:8.0f} req/s  "
                    f"cpu {sample.cpu_util:5.2f}  {sample.per_core:8.0f} req/s/core",
                    flush=True,
                )
    return results


# (name, uvloop, loop timers instead of the timerfd (the old way), spin before each slot in ms)
LOOPS = (
    ("asyncio", False, False, 0.0),
    ("uvloop", True, False, 0.0),
    ("uvloop loop-timers", True, True, 0.0),
    ("uvloop spin-1ms", True, False, 1.0),
)


def accuracy(args: argparse.Namespace) -> list[dict[str, float | str]]:
    rows: list[dict[str, float | str]] = []
    known = args.delay_ms / 1000
    with target(args.delay_ms) as url:
        for rep in range(args.reps):
            for loop, uvloop, loop_timers, spin_ms in LOOPS:
                _stats(url, reset=True)
                cmd = _ours(url, args.delay_rate, args.delay_duration, uvloop, loop_timers, spin_ms)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                done = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=args.delay_duration + 60,
                    preexec_fn=_renice,
                )
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                server_p95 = (_stats(url)["handled_p95_us"] or 0) / 1e6
                p95 = float(result["p95_s"])
                row: dict[str, float | str] = {
                    "loop": loop,
                    "count": float(result["count"]),
                    "p50_ms": float(result["p50_s"]) * 1000,
                    "p95_ms": p95 * 1000,
                    "server_p95_ms": server_p95 * 1000,
                    "error_vs_known_pct": (p95 - known) / known * 100,
                    "error_vs_server_pct": (p95 - server_p95) / server_p95 * 100,
                    "cpu_cores": cpu_s / float(result["elapsed_s"]),
                }
                rows.append(row)
                print(
                    f"  rep {rep + 1} {loop:18s} n={row['count']:.0f} P95 {row['p95_ms']:.2f} ms"
                    f" (server {row['server_p95_ms']:.2f} ms): "
                    f"{row['error_vs_known_pct']:+.2f} % vs {args.delay_ms:g} ms, "
                    f"{row['error_vs_server_pct']:+.2f} % vs server, "
                    f"cpu {row['cpu_cores']:.3f} cores",
                    flush=True,
                )
    return rows


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description="LoadGenerator vs Locust on loopback")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rate", type=float, default=3000.0, help="fixed rate, req/s")
    parser.add_argument("--users", type=int, default=64, help="Locust users")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--measure", type=float, default=8.0)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--delay-rate", type=float, default=200.0)
    parser.add_argument("--delay-duration", type=float, default=12.0)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--nice", type=int, default=0, help="niceness of all children (e.g. -10 on a shared box)"
    )
    args = parser.parse_args()
    global _NICE
    _NICE = args.nice

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, load {load}", flush=True)
    report: dict[str, object] = {"args": {k: str(v) for k, v in vars(args).items()}}
    if not args.skip_throughput:
        print("(a) requests/s per CPU core", flush=True)
        results = throughput(args)
        print("\n| contender | req/s (median) | CPU cores (median) | req/s per core (median) |")
        print("|---|---:|---:|---:|")
        medians: dict[str, float] = {}
        for name, samples in results.items():
            medians[name] = _median([s.per_core for s in samples])
            print(
                f"| {name} | {_median([s.req_s for s in samples]):.0f} "
                f"| {_median([s.cpu_util for s in samples]):.2f} | {medians[name]:.0f} |"
            )
        fixed = {k: v for k, v in medians.items() if k.startswith("ours@") and "max" not in k}
        ours = max(v for k, v in fixed.items() if "loop-timers" not in k)
        locust = max(v for k, v in medians.items() if k.startswith("locust"))
        print(f"\nratio ours (fixed rate, best loop) / Locust (best mode): {ours / locust:.2f}")
        for name in [k for k in fixed if "loop-timers" in k]:
            print(f"ratio {name} / Locust (best mode): {fixed[name] / locust:.2f}")
        report["throughput"] = {k: [vars(s) for s in v] for k, v in results.items()}
        report["ratio"] = ours / locust
    if not args.skip_accuracy:
        print(f"\n(b) P95 against a known {args.delay_ms:g} ms delay", flush=True)
        rows = accuracy(args)
        for loop, *_ in LOOPS:
            mine = [r for r in rows if r["loop"] == loop]
            known = _median([float(r["error_vs_known_pct"]) for r in mine])
            server = _median([float(r["error_vs_server_pct"]) for r in mine])
            p95 = _median([float(r["p95_ms"]) for r in mine])
            cores = _median([float(r["cpu_cores"]) for r in mine])
            print(f"{loop}: median P95 {p95:.2f} ms, {known:+.2f} % vs known, ", end="")
            print(f"{server:+.2f} % vs server, generator CPU {cores:.3f} cores")
        report["accuracy"] = rows
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average at the end: {load}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
