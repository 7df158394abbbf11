"""The reference target's traffic profile for the engine's tests, narrowed where a test needs it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paths import REFERENCE_TARGET

from rollback_drill.profile import TrafficProfile
from rollback_drill.target import load_target

REFERENCE_PROFILE = load_target(REFERENCE_TARGET).traffic


def reference_profile(
    crud: Mapping[str, int] | None = None,
    *,
    stream_events: int | None = None,
    stream_interval_ms: int | None = None,
) -> TrafficProfile:
    """The reference profile with CRUD request weights (by request name) and the stream's
    event count and interval replaced."""
    data: dict[str, Any] = REFERENCE_PROFILE.model_dump()
    if crud is not None:
        for request in data["categories"]["crud"]["requests"]:
            request["weight"] = int(crud.get(request["name"], 0))
    if stream_events is not None or stream_interval_ms is not None:
        n = stream_events if stream_events is not None else 5
        ms = stream_interval_ms if stream_interval_ms is not None else 50
        data["categories"]["streaming"]["path"] = f"/api/stream/?n={n}&interval_ms={ms}"
        data["categories"]["streaming"]["duration_s"] = n * ms / 1000
    return TrafficProfile.model_validate(data)
