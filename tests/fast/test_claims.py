"""What a study needs once (the base model's trial, each merge) survives the worker that claimed it
dying: real processes on a real journal storage, one SIGKILLed while it holds the claim (no model)."""

import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from harness.store.study import StudyHandle, TrialAttr
from harness.sweep import claims, heartbeat

HOLD = """
import sys, time, optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from harness.store.study import StudyHandle
from harness.sweep.claims import run_claimed
study = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(sys.argv[1])))
attrs = {"kind": sys.argv[2]}
def work(trial):
    print("holding", flush=True)
    time.sleep(600)
run_claimed(StudyHandle(study), attrs, lambda t: t.user_attrs.get("kind") == sys.argv[2], work)
"""
KINDS = {"base": {TrialAttr.CANDIDATE: "base", TrialAttr.KIND: "base"}, "merge": {TrialAttr.KIND: "merge", TrialAttr.MERGE_METHOD: "ties"}}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_claim_whose_worker_died_is_failed_once_stale_and_done_by_the_next(kind, tmp_path, monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_S", 0.1)
    monkeypatch.setattr(heartbeat, "STALE_S", 1.0)
    journal = str(tmp_path / "journal.log")
    study = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, journal, kind], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)

    handle, done = StudyHandle(study), []
    same = lambda t: t.user_attrs.get(TrialAttr.KIND) == kind  # noqa: E731
    claims.run_claimed(handle, KINDS[kind], same, lambda trial: done.append(trial.number) or ([1.0], {}))
    assert done == []  # its heartbeat is still fresh: the claim looks held, nobody redoes it yet
    waited = time.perf_counter()
    claims.wait_for_claim(handle, same, say=lambda line: None)
    assert time.perf_counter() - waited < 10
    claims.run_claimed(handle, KINDS[kind], same, lambda trial: done.append(trial.number) or ([1.0], {}))
    trials = study.get_trials()
    assert done == [1] and [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert "worker died" in trials[0].user_attrs[TrialAttr.FAIL_REASON]
    claims.run_claimed(handle, KINDS[kind], same, lambda trial: done.append(trial.number) or ([1.0], {}))
    assert done == [1]  # done once: a third worker finds it complete
