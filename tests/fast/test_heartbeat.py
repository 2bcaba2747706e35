"""A running trial's heartbeat survives a storage hiccup and ends with the trial (real Optuna storage;
the hiccup is one write made to fail)."""

import time

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

from harness.store.study import StudyHandle
from harness.sweep import heartbeat
from harness.sweep.heartbeat import BEAT, Heartbeat


class Hiccup(JournalStorage):
    """The real journal storage, whose heartbeat writes fail `failures` times after the first."""

    def __init__(self, path, failures: int):
        super().__init__(JournalFileBackend(str(path)))
        self.failures, self.writes = failures, 0

    def set_trial_system_attr(self, trial_id, key, value):
        self.writes += 1
        if key == BEAT and self.writes > 1 and self.failures:
            self.failures -= 1
            raise OSError("database is locked")
        super().set_trial_system_attr(trial_id, key, value)


def test_a_failed_heartbeat_write_is_tried_again_and_the_beat_ends_with_the_trial(tmp_path, monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_S", 0.05)
    storage = Hiccup(tmp_path / "journal.log", failures=2)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    handle = StudyHandle(study)
    beat = Heartbeat(handle, trial._trial_id)
    first = storage.get_trial(trial._trial_id).system_attrs[BEAT]
    time.sleep(0.6)  # two failed writes, then the beats go on
    assert storage.failures == 0
    later = storage.get_trial(trial._trial_id).system_attrs[BEAT]
    assert later > first + 0.2, "the heartbeat stopped after a failed write: the live trial would look dead"
    study.tell(trial, 1.0)
    time.sleep(0.2)
    assert not beat._thread.is_alive()  # a finished trial is not kept alive
    beat.stop()
