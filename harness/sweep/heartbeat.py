"""A running trial's heartbeat, and the recovery of trials whose worker died.

A running trial stamps the time into its own record in the study's storage every HEARTBEAT_S seconds,
so every worker sees it, on this machine or another. A worker starting up marks RUNNING trials whose
last beat is older than STALE_S as FAIL ("worker died") and queues their params again, so a
SIGKILLed worker's trial is retried by whoever runs next. This works on every storage (Optuna's own
heartbeat covers RDB storages only, not journal files).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import optuna

from harness.store.study import StudyHandle, TrialAttr

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
STALE_S = float(os.environ.get("HARNESS_STALE_S", "60"))  # a heartbeat older than this: the worker died
BEAT = "harness:heartbeat"  # trial system attribute: time.time() of the last beat


class Heartbeat:
    """Stamps the trial's last-beat time every HEARTBEAT_S seconds while it runs."""

    def __init__(self, handle: StudyHandle, trial_id: int):
        self._handle, self._id, self._stop = handle, trial_id, threading.Event()
        self._beat_once()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat_once(self) -> bool:
        """One stamp; False once the trial is finished (nothing left to keep alive). A write that fails
        otherwise (a storage hiccup) is tried again at the next beat: stopping would let a live trial go
        stale and be retried elsewhere while it still runs here."""
        try:
            self._handle.stamp(self._id, BEAT, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        except Exception as err:  # noqa: BLE001 - any storage error: keep beating
            log.warning("heartbeat of trial %d not written (trying again in %.0f s): %s", self._id, HEARTBEAT_S, err)
        return True

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_S) and self._beat_once():
            pass

    def stop(self):
        self._stop.set()
        self._thread.join()


def recover_stale(handle: StudyHandle) -> int:
    """Fail RUNNING trials whose heartbeat stopped, and queue their params again."""
    recovered = 0
    for t in handle.trials(states=(optuna.trial.TrialState.RUNNING,)):
        age = time.time() - t.system_attrs.get(BEAT, t.datetime_start.timestamp())
        if age > STALE_S:
            trial_id = handle.trial_id(t)
            handle.set_attrs(trial_id, {TrialAttr.FAIL_REASON: f"worker died (no heartbeat for {age:.0f} s); retried"})
            handle.finish(trial_id, optuna.trial.TrialState.FAIL)
            if t.params:
                handle.study.enqueue_trial(t.params, user_attrs={TrialAttr.RETRY_OF: t.number})
            recovered += 1
    return recovered
