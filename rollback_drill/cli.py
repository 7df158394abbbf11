"""The suite's command line: ``python -m rollback_drill.cli cleanup``.

``cleanup`` removes what a killed run (SIGKILL) left behind — containers, networks, volumes and
images carrying the ``io.rollback-drill.run`` label and nothing else — sparing runs whose
process is still alive unless ``--all`` is given. Every error is one line and a distinct exit
status (see :mod:`rollback_drill.errors`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rollback_drill.errors import DrillError
from rollback_drill.stack import RUN_LABEL, docker_client, sweep

PID_LABEL = "io.rollback-drill.pid"


def _alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup(all_runs: bool = False) -> list[str]:
    client = docker_client()
    runs: dict[str, int] = {}
    for c in client.containers.list(all=True, filters={"label": RUN_LABEL}):
        labels = c.labels
        runs[labels[RUN_LABEL]] = int(labels.get(PID_LABEL, "0") or 0)
    for kind in (client.networks, client.volumes, client.images):
        for obj in kind.list(filters={"label": RUN_LABEL}):
            labels = obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels") or {}
            runs.setdefault(labels.get(RUN_LABEL, ""), int(labels.get(PID_LABEL, "0") or 0))
    removed: list[str] = []
    for run, pid in sorted(runs.items()):
        if run and (all_runs or not _alive(pid)):
            removed += sweep(client, f"{RUN_LABEL}={run}")
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rollback-drill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    clean = sub.add_parser("cleanup", help="remove what killed runs left behind (by label only)")
    clean.add_argument("--all", action="store_true", help="also runs whose process is alive")
    args = parser.parse_args(argv)
    try:
        if args.command == "cleanup":
            removed = cleanup(all_runs=args.all)
            for item in removed:
                print(f"removed {item}")
            print(f"cleanup: {len(removed)} object(s) removed")
    except DrillError as exc:
        print(f"rollback-drill: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
