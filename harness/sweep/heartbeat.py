"""A running trial's heartbeat, and the recovery of trials whose worker died.

A running trial touches runs/<study>/trial-<n>/heartbeat every HEARTBEAT_S seconds; a worker starting
up marks RUNNING trials whose heartbeat is older than STALE_S as FAIL ("worker died") and queues
their params again, so a SIGKILLed worker's trial is retried by whoever runs next. This works on
every storage (Optuna's own heartbeat covers RDB storages only, not journal files).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import optuna

from harness import store

HEARTBEAT_S = 5.0
STALE_S = float(os.environ.get("HARNESS_STALE_S", "60"))  # a heartbeat older than this: the worker died


class Heartbeat:
    """Touches a file every HEARTBEAT_S seconds while a trial runs."""

    def __init__(self, path: Path):
        self.path, self._stop = path, threading.Event()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_S):
            self.path.touch()

    def stop(self):
        self._stop.set()
        self._thread.join()


def recover_stale(study: optuna.Study) -> int:
    """Fail RUNNING trials whose heartbeat stopped, and queue their params again."""
    recovered = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        beat = store.heartbeat_file(study.study_name, t.number)
        age = time.time() - (beat.stat().st_mtime if beat.exists() else t.datetime_start.timestamp())
        if age > STALE_S:
            study._storage.set_trial_user_attr(t._trial_id, store.TrialAttr.FAIL_REASON, f"worker died (no heartbeat for {age:.0f} s); retried")
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            if t.params:
                study.enqueue_trial(t.params, user_attrs={store.TrialAttr.RETRY_OF: t.number})
            recovered += 1
    return recovered
