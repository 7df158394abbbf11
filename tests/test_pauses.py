"""The drill process's garbage-collection pauses, as ``GcPauses`` records them."""

from __future__ import annotations

import gc

from rollback_drill.pauses import GcPauses


def test_records_collections_while_started_and_nothing_after_stop() -> None:
    watch = GcPauses(min_s=0.0).start()
    try:
        gc.collect()
    finally:
        watch.stop()
    assert watch.collections >= 1
    full = [p for p in watch.pauses if p.generation == 2]
    assert full and full[0].duration_s >= 0.0
    seen = watch.collections
    gc.collect()
    assert watch.collections == seen
    assert watch._callback not in gc.callbacks


def test_only_pauses_at_least_min_s_are_kept() -> None:
    watch = GcPauses(min_s=3600.0).start()
    try:
        gc.collect()
    finally:
        watch.stop()
    assert watch.collections >= 1 and watch.pauses == []
    assert watch.longest_s > 0.0
