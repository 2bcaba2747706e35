"""Experiment trackers behind one contract (`_base.Tracker`); any combination, each optional."""

from __future__ import annotations

import logging

from harness.sweep.trackers._base import Tracker, Trackers

log = logging.getLogger(__name__)
__all__ = ["Tracker", "Trackers", "make_trackers"]


def _registry() -> dict[str, type[Tracker]]:
    from harness.sweep.trackers.mlflow_tracker import MLflowTracker
    from harness.sweep.trackers.neptune_tracker import NeptuneTracker

    return {"mlflow": MLflowTracker, "neptune": NeptuneTracker}


def make_trackers(names: list[str], study: str) -> Trackers:
    """The named trackers for `study` ("none" is none); one that cannot start is skipped with a warning."""
    made = []
    kinds = _registry()
    for name in dict.fromkeys(names):
        if name == "none":
            continue
        try:
            made.append(kinds[name](study))
        except Exception as err:  # noqa: BLE001 - a tracker is optional
            log.warning("tracker %s unavailable: %s", name, err)
    return Trackers(made)
