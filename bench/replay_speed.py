"""How fast the committed recordings replay: a benchmark, not a test.

``tests/test_replay.py`` proves each replay exact; how long one takes is measured here (a timed
assertion in a unit test fails on a busy shared host for no fault of the code). Each recording in
``tests/data/recordings`` is loaded once, then replayed ``--reps`` times with the run's policy;
the script prints per recording its decisions and the minimum, median and maximum replay time, and
the medians' sum over the whole set.

    .venv/bin/python bench/replay_speed.py --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from rollback_drill.replay import load_recording, replay

RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "data" / "recordings"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="replays per recording")
    parser.add_argument("--dir", type=Path, default=RECORDINGS, help="the recordings")
    args = parser.parse_args()
    paths = sorted(args.dir.glob("*.json.gz"))
    if not paths:
        raise SystemExit(f"no recordings in {args.dir}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {len(paths)} recordings")
    medians = []
    for path in paths:
        rec = load_recording(path)
        times = []
        ticks = 0
        for _ in range(args.reps):
            result = replay(rec)
            if not result.same:
                raise SystemExit(f"{path.name}: the replay is not exact")
            times.append(result.elapsed_s * 1000)
            ticks = len(result.rows())  # the decisions compared
        med = statistics.median(times)
        medians.append(med)
        name = path.name.removesuffix(".json.gz")
        print(
            f"{name:90.90s} {ticks:4d} decisions  min {min(times):7.1f}  median {med:7.1f}  "
            f"max {max(times):7.1f} ms"
        )
    print(
        f"sum of medians: {sum(medians):.0f} ms; median of medians: "
        f"{statistics.median(medians):.1f} ms; load average at end: {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
