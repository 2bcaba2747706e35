"""What a study needs exactly once, whichever worker on whichever machine gets there first: the base
model's trial and each merge.

A claim is a RUNNING trial in the study's storage, created unless one matching `same` exists,
complete or running. Two workers claiming at once both create one; the lower trial number keeps it
and the other claim is withdrawn as surplus. A claimant that dies stops its heartbeat: a worker that
needs the claim done (`wait_for_claim`) fails it once the beat is stale (heartbeat.py) and claims it
again, and so does the next worker to start.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

import optuna

from harness.runtime.processes import interrupt_name
from harness.store.study import StudyHandle, TrialAttr, is_base_trial
from harness.sweep import heartbeat
from harness.sweep.heartbeat import Heartbeat, recover_stale

log = logging.getLogger(__name__)
S = optuna.trial.TrialState


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_claim(t: optuna.trial.FrozenTrial) -> bool:
    """The base model's trial or a merge: claimed once per study, not a trial of the budget."""
    return t.user_attrs.get(TrialAttr.KIND) in ("base", "merge") or is_base_trial(t)


def claims(handle: StudyHandle, same: Callable) -> list[optuna.trial.FrozenTrial]:
    """Trials matching `same`, complete or running (lowest number first), withdrawn claims aside."""
    return sorted((t for t in handle.trials(states=(S.COMPLETE, S.RUNNING)) if same(t) and not t.user_attrs.get(TrialAttr.SURPLUS)),
                  key=lambda t: t.number)


def run_claimed(handle: StudyHandle, attrs: dict, same: Callable, work: Callable, fatal: bool = True,
                on_failure: Callable[[int, str], None] | None = None) -> None:
    """Run `work(trial) -> (values, attrs)` on a trial no other worker runs, unless one matching `same`
    exists. A failure is recorded on the trial with its reason and raised if `fatal` (an interrupt
    always); otherwise logged and passed to `on_failure(trial number, reason)`."""
    if claims(handle, same):
        return
    trial_id = handle.claim({**attrs, TrialAttr.WORKER: worker_name()})
    if handle.trial_id(claims(handle, same)[0]) != trial_id:
        handle.set_attrs(trial_id, {TrialAttr.SURPLUS: True})
        handle.finish(trial_id, S.FAIL)
        return
    trial = handle.frozen(trial_id)
    beat = Heartbeat(handle, trial_id)
    try:
        values, done = work(trial)
        handle.set_attrs(trial_id, done)
        handle.finish(trial_id, S.COMPLETE, values)
    except BaseException as err:
        interrupted = isinstance(err, KeyboardInterrupt)
        reason = f"interrupted ({interrupt_name(err)})" if interrupted else getattr(err, "reason", None) or str(err)
        handle.set_attrs(trial_id, {TrialAttr.FAIL_REASON: reason[:500]})
        handle.finish(trial_id, S.FAIL)
        if fatal or interrupted:
            raise
        log.error("trial %d failed: %s", trial.number, reason)
        if on_failure is not None:
            on_failure(trial.number, reason)
    finally:
        beat.stop()


def wait_for_claim(handle: StudyHandle, same: Callable, say: Callable[[str], None]) -> None:
    """Return once no other worker holds a claim matching `same`: it completed, or its worker died
    (the heartbeat went stale) and it was failed, so it can be claimed again."""
    while (held := claims(handle, same)) and held[0].state == S.RUNNING:
        say(f"waiting for trial {held[0].number} ({held[0].user_attrs.get(TrialAttr.WORKER, 'another worker')})")
        time.sleep(heartbeat.HEARTBEAT_S)
        recover_stale(handle)
