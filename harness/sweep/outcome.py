"""What a sweep's study holds when a worker is done: trials completed (the base aside) and why the others failed."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import optuna

from harness.store.study import StudyHandle, TrialAttr, is_base_trial

S = optuna.trial.TrialState


@dataclass
class SweepOutcome:
    completed: int  # trials told COMPLETE, the base not counted
    failed: int  # FAIL or PRUNED (retried dead workers' trials included)
    reasons: dict[str, int]  # failure reason -> how many trials

    @classmethod
    def of(cls, handle: StudyHandle) -> SweepOutcome:
        trials = [t for t in handle.trials() if not is_base_trial(t) and not t.user_attrs.get(TrialAttr.SURPLUS)]
        failed = [t for t in trials if t.state in (S.FAIL, S.PRUNED)]
        reasons = Counter(_reason_kind(t.user_attrs.get(TrialAttr.FAIL_REASON, "no reason recorded")) for t in failed)
        return cls(sum(t.state == S.COMPLETE for t in trials), len(failed), dict(reasons.most_common()))

    def failure_lines(self) -> list[str]:
        if not self.failed:
            return []
        return [f"{self.failed} trial(s) failed or were pruned:"] + [f"  {n} x {reason}" for reason, n in self.reasons.items()]


def _reason_kind(reason: str) -> str:
    """A failure reason without what differs between trials (numbers), so equal causes group together."""
    return re.sub(r"\d+(\.\d+)?", "N", reason.splitlines()[0])[:160] if reason else reason
