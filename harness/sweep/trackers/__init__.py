"""Experiment trackers behind one contract (`_base.Tracker`); any combination, each optional."""

from __future__ import annotations

import logging

from harness.runtime.registry import Registry
from harness.sweep.trackers._base import Tracker, Trackers

log = logging.getLogger(__name__)
__all__ = ["TRACKERS", "Tracker", "Trackers", "make_trackers"]

# Imported on first use: each tracker's client library is heavy and optional.
TRACKERS: Registry[type[Tracker]] = Registry("--tracker")
TRACKERS.add("mlflow", "harness.sweep.trackers.mlflow_tracker:MLflowTracker")
TRACKERS.add("neptune", "harness.sweep.trackers.neptune_tracker:NeptuneTracker")


def make_trackers(names: list[str], study: str) -> Trackers:
    """The named trackers for `study` ("none" is none); one that cannot start is skipped with a warning."""
    made = []
    for name in dict.fromkeys(names):
        if name == "none":
            continue
        try:
            made.append(TRACKERS.get(name)(study))
        except Exception as err:  # noqa: BLE001 - a tracker is optional
            log.warning("tracker %s unavailable: %s", name, err)
    return Trackers(made)
