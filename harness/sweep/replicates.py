"""A sweep's replicates (`replicates: {seeds: 3, top: 2}` in the sweep file): after the budget, each of
the `top` configurations is re-trained with new seeds (trial n trains with seed + n) until it has
`seeds` runs, so the pick and the leaderboard see how much a configuration's score moves with the
training seed, not only with the items (select/objective.py carries it into every interval).

A replicate is an ordinary trial with the same params and `replicate_of` naming the original; it is
scored whole (never stopped early) and does not use the budget. Every worker runs this step: whoever
asks first takes a queued replicate, and a configuration's attempts, failed ones included, are
counted so that a replicate that keeps failing is not retried forever.
"""

from __future__ import annotations

import optuna

from harness.config import Replicates
from harness.runtime.processes import raise_if_interrupted
from harness.store.study import TrialAttr as A
from harness.sweep.claims import is_claim

S = optuna.trial.TrialState


def replicate_top(worker, spec: Replicates, dists: dict) -> None:
    """`worker`: the running SweepWorker (its study, handle, ranking and trial runner)."""
    originals = [t for t in worker.handle.trials(states=(S.COMPLETE,)) if not is_claim(t) and t.params
                 and A.REPLICATE_OF not in t.user_attrs and not t.user_attrs.get(A.PARENTS)]
    for original in worker.ranked(originals)[:spec.top]:
        while True:
            raise_if_interrupted()
            attempts = [t for t in worker.handle.trials() if t.user_attrs.get(A.REPLICATE_OF) == original.number]
            if len(attempts) + 1 >= spec.seeds:
                break
            worker.progress.say(f"replicate {len(attempts) + 2}/{spec.seeds} of trial {original.number}'s configuration")
            worker.study.enqueue_trial(original.params, user_attrs={A.REPLICATE_OF: original.number}, skip_if_exists=False)
            worker.run_trial(worker.study.ask(dists), spec.seeds)
