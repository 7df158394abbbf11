"""The suite's command line: ``rollback-drill`` (``python -m rollback_drill.cli``).

``cleanup`` removes what a killed run (SIGKILL) left behind -- containers, networks, volumes and
images carrying the ``io.rollback-drill.run`` label and nothing else, and the run's workspace
(with its secrets) in the temporary directory -- sparing runs whose process is still alive
unless ``--all`` is given; ``--run ID`` narrows it to the named runs.
``check-policy PATH`` and ``check-target PATH`` validate a policy or a target (with the machine:
Docker, Compose, the host ports the target pins) and change nothing; ``check-target --deep``
also reviews the target and the plan for what will break a rollback
(:mod:`rollback_drill.readiness`; ``--no-start``: without starting the previous release;
``--json PATH``: the findings as JSON; these options without ``--deep`` are refused).
``up [--target PATH] [--release previous|next]`` brings a stack up ready to use and leaves it
running (kept: ``cleanup`` spares it unless ``--all``); ``down [--run ID]`` removes it
(:mod:`rollback_drill.session`). ``report JUNIT_OR_RUN_DIR...`` compares runs over time
(:mod:`rollback_drill.trends`).
``drill --target PATH [-m MARKERS] [PYTEST ARGS...]`` runs the drills shipped in the package
(``rollback_drill.drills``) with pytest from the current directory, JUnit and the drill report
written under ``reports/`` there.
Every error is one line and a distinct exit status (see :mod:`rollback_drill.errors`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rollback_drill import alerts, chaostoolkit, migrations_check, replay, watch
from rollback_drill.cleanup import cleanup, untag_stand_ins
from rollback_drill.compose import Compose
from rollback_drill.errors import DrillError
from rollback_drill.override import OVERRIDE_FILE, write_override
from rollback_drill.policy import load_policy
from rollback_drill.preflight import check_compose, check_pinned_ports
from rollback_drill.session import (
    bring_up,
    describe,
    kept_runs,
    resolve_target,
    take_down,
)
from rollback_drill.stack import docker_client
from rollback_drill.target import load_target
from rollback_drill.workspace import create_workspace


def check_target(path: Path) -> list[str]:
    """Validate a target and the machine it needs; returns what was checked."""
    target = load_target(path)
    docker_client().close()
    version = check_compose()
    workspace = create_workspace(target)
    try:
        write_override(workspace.root)
        compose = Compose(
            workspace.project,
            workspace.root,
            [*target.compose_files, OVERRIDE_FILE],
            workspace.env_file,
        )
        check_pinned_ports(compose)  # the ports the run publishes, not the files' own
    finally:
        workspace.remove()
    return [
        f"target {target.name}: compose file(s) {', '.join(target.compose_files)} found",
        f"Docker daemon answers; docker compose {version}",
        "no host port it pins is in use",
    ]


def deep_only(args: argparse.Namespace) -> list[str]:
    """The options of ``check-target`` given that only the review (``--deep``) reads."""
    given = {"--no-start": args.no_start, "--json": args.json, "--load-rate": args.load_rate}
    return [flag for flag, value in given.items() if value is not None and value is not False]


def drill_args(
    target: Path, marker: str, report_dir: Path, junitxml: Path | None, extra: Sequence[str]
) -> list[str]:
    """The pytest command line that runs the shipped drills against ``target`` from here.

    The team's own ini files are left out (``-c`` names the package's): the drills run with
    the settings they are written for, whatever the repository's pytest configuration says."""
    import rollback_drill

    package = Path(rollback_drill.__file__).parent
    junit = junitxml or report_dir / f"junit-{marker.replace(' ', '-') or 'all'}.xml"
    return [
        "-c",
        str(package / "drills.ini"),
        "--rootdir",
        str(Path.cwd()),
        "--pyargs",
        "rollback_drill.drills",
        "--drill-target",
        str(target.resolve()),
        "--drill-report-dir",
        str(report_dir / "drill"),
        f"--junitxml={junit}",
        *(["-m", marker] if marker else []),
        *extra,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rollback-drill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    clean = sub.add_parser("cleanup", help="remove what killed runs left behind (by label only)")
    clean.add_argument(
        "--all",
        action="store_true",
        help="also runs whose process is alive, and stacks left running by `up`",
    )
    clean.add_argument(
        "--run", action="append", default=[], metavar="ID", help="only this run (repeatable)"
    )
    clean.add_argument(
        "--images", action="store_true", help="also the registry names tagged onto local images"
    )
    policy = sub.add_parser("check-policy", help="validate a policy file; changes nothing")
    policy.add_argument("path", type=Path)
    target = sub.add_parser("check-target", help="validate a target and this machine for it")
    target.add_argument("path", type=Path)
    target.add_argument(
        "--deep", action="store_true", help="review what will break a rollback (readiness)"
    )
    target.add_argument(
        "--no-start", action="store_true", help="with --deep: without a started stack"
    )
    target.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="with --deep: findings as JSON"
    )
    target.add_argument(
        "--load-rate", type=float, default=None, help="with --deep: drill load, req/s (40)"
    )
    drill = sub.add_parser(
        "drill",
        help="run the shipped drills against a target (pytest; extra arguments go to pytest)",
    )
    drill.add_argument("--target", type=Path, required=True, help="the target file (YAML)")
    drill.add_argument("-m", dest="marker", default="quick", help="marker expression (quick)")
    drill.add_argument(
        "--report-dir", type=Path, default=Path("reports"), help="where reports go (reports/)"
    )
    drill.add_argument("--junitxml", type=Path, default=None, help="JUnit file")
    up = sub.add_parser(
        "up", help="bring a stack up ready to use (migrated, users created) and leave it running"
    )
    up.add_argument(
        "--target", type=Path, default=None, help="the target file (default: $RBD_TARGET)"
    )
    up.add_argument(
        "--release",
        default=None,
        help="previous (default) or next (deployed on top), or a release's own name",
    )
    up.add_argument(
        "--report-dir", type=Path, default=Path("reports"), help="journal in DIR/up/<run>/"
    )
    up.add_argument(
        "--show-credentials", action="store_true", help="also print the logins (not only where)"
    )
    down = sub.add_parser("down", help="remove a stack `up` left running, and its workspace")
    down.add_argument("--run", default=None, metavar="ID", help="which one (when several)")
    report = sub.add_parser(
        "report", help="runs over time: TTD per trigger, rollback per phase, defects, failures"
    )
    report.add_argument(
        "inputs", nargs="+", type=Path, metavar="JUNIT_OR_RUN_DIR", help="JUnit files, run dirs"
    )
    report.add_argument("--html", type=Path, default=None, metavar="OUT", help="an HTML page")
    report.add_argument("--plots", type=Path, default=None, metavar="DIR", help="PNG plots here")
    alerts.add_parser(sub)
    migrations_check.add_parser(sub)
    chaostoolkit.add_parser(sub)
    replay.add_parser(sub)
    watch_parser = sub.add_parser(
        "watch", help="the policy and the monitor on a running deployment (exits 3: roll back)"
    )
    watch.add_arguments(watch_parser)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "drill":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "check-target" and not args.deep and (flags := deep_only(args)):
        verb = "needs" if len(flags) == 1 else "need"
        print(f"rollback-drill: check-target: {' and '.join(flags)} {verb} --deep", file=sys.stderr)
        return 2  # a usage error, as argparse's: before anything is checked
    try:
        if hasattr(args, "func"):  # alerts, export-chaostoolkit
            return int(args.func(args))
        if args.command == "watch":
            return watch.watch(args)
        if args.command == "drill":
            import pytest

            load_target(args.target)  # a bad target is one line, before pytest starts
            argv_ = drill_args(args.target, args.marker, args.report_dir, args.junitxml, extra)
            return int(pytest.main(argv_))
        if args.command == "cleanup":
            removed = cleanup(all_runs=args.all, only=args.run)
            if args.images:
                removed += untag_stand_ins()
            for item in removed:
                print(f"removed {item}")
            print(f"cleanup: {len(removed)} object(s) removed")
            if not args.all:
                for run in sorted(kept_runs()):
                    print(
                        f"kept {run}: left running by `rollback-drill up` "
                        f"(rollback-drill down --run {run})"
                    )
        elif args.command == "up":
            try:
                kept = bring_up(
                    resolve_target(args.target), args.release, report_root=args.report_dir
                )
            except KeyboardInterrupt:
                print("rollback-drill: up interrupted; the stack was removed", file=sys.stderr)
                return 130
            for line in describe(kept, show_credentials=args.show_credentials):
                print(line)
        elif args.command == "down":
            run, removed = take_down(args.run)
            for item in removed:
                print(f"removed {item}")
            print(f"down: {run} removed ({len(removed)} object(s))")
        elif args.command == "report":
            from rollback_drill import trends

            return trends.run_report(args.inputs, html_out=args.html, plots_dir=args.plots)
        elif args.command == "check-policy":
            loaded = load_policy(args.path)
            print(f"{args.path}: ok ({len(loaded.triggers)} triggers, {len(loaded.matrix)} rows)")
        elif args.command == "check-target":
            for line in check_target(args.path):
                print(line)
            if args.deep:
                from rollback_drill import readiness

                readiness.check_deep(
                    args.path,
                    start=not args.no_start,
                    json_path=args.json,
                    load_rate=args.load_rate,
                )
            print(f"{args.path}: ok")
    except DrillError as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
