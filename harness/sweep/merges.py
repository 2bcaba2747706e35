"""A sweep's merged candidates (`merge:` in the sweep file): after the budget, for each merge method,
one merged adapter of the top_k complete trials, scored like any trial.

Claimed like the base model's trial (claims.py: one worker per method, on any machine); the merge
waits until no trial is running anywhere, so every worker's trials compete for the top_k. A merge
trains nothing: its cost is its parents' (their samples, their training time).
"""

from __future__ import annotations

import shutil
import time

import optuna

from harness.config import MergeSpec
from harness.score.backends import make_candidate
from harness.store import paths
from harness.store.study import TrialAttr as A
from harness.store.study import candidate_name, params_of
from harness.sweep.claims import is_claim, run_claimed, wait_for_claim
from harness.sweep.heartbeat import HEARTBEAT_S, recover_stale
from harness.train import merge as merging

S = optuna.trial.TrialState


def merge_top(worker, spec: MergeSpec) -> None:
    """`worker`: the running SweepWorker (its study handle, engine, scorer, trackers and progress)."""
    while running := [t for t in worker.handle.trials(states=(S.RUNNING,)) if not is_claim(t)]:
        worker.progress.say(f"merging after {len(running)} running trial(s) finish")
        time.sleep(HEARTBEAT_S)
        recover_stale(worker.handle)

    def same(method):
        return lambda t: t.user_attrs.get(A.KIND) == "merge" and t.user_attrs.get(A.MERGE_METHOD) == method

    def claim(method):
        attrs = {A.KIND: "merge", A.MERGE_METHOD: method}
        run_claimed(worker.handle, attrs, same(method), lambda trial: _merge_trial(worker, trial, method, spec), fatal=False,
                    on_failure=lambda number, reason: worker.trackers.log_failure(f"trial-{number}", attrs, reason))

    for method in spec.methods:
        claim(method)
    for method in spec.methods:  # a merge held by a worker that died is made here once its heartbeat is stale
        wait_for_claim(worker.handle, same(method), worker.progress.say)
        claim(method)


def _merge_trial(worker, trial: optuna.trial.FrozenTrial, method: str, spec: MergeSpec):
    trained = [t for t in worker.handle.trials(states=(S.COMPLETE,)) if not is_claim(t)]
    parents = worker.ranked(trained)[:spec.top_k]
    if len(parents) < 2:
        raise RuntimeError(f"merge {method}: {len(parents)} complete trial(s); a merge needs at least 2")
    names = [candidate_name(t) for t in parents]
    worker.progress.say(f"trial {trial.number}: merging {', '.join(names)} ({method})")
    where = paths.trial_dir(worker.cfg.study, trial.number)
    adapter = paths.adapter_dir(where)
    if adapter.exists():
        shutil.rmtree(adapter)
    folders = [(n, worker.artifacts.fetch_folder(t.user_attrs[A.ARTIFACTS]["adapter"])) for n, t in zip(names, parents, strict=True)]
    record = merging.merge(worker.base, folders, method, adapter, density=spec.density)
    cand = make_candidate(candidate_name(trial), worker.base, adapter)
    worker.engine.add_candidates([cand])
    trial_id = worker.handle.trial_id(trial)
    scored = worker.scorer.score(cand, where, trial_id)
    cost = {"n_samples": sum(params_of(t).get("n_samples", 0) for t in parents), "lora_r": record["r"]}
    attrs = {A.PARENTS: names, A.PARAMS: cost, A.TRAIN_S: sum(t.user_attrs.get(A.TRAIN_S, 0.0) for t in parents),
             A.TOKENS_SEEN: sum(t.user_attrs.get(A.TOKENS_SEEN, 0) for t in parents), A.SCORE_S: scored.seconds,
             A.SCORES: scored.summary.to_dict(orient="records"),
             A.ARTIFACTS: worker.handle.upload_outputs(worker.artifacts, trial_id, where, adapter)}
    worker.trackers.log_trial(candidate_name(trial), cost, scored.summary, scored.values, {**attrs, "adapter": str(adapter)})
    worker.progress.say(f"trial {trial.number}: merge {method} of {', '.join(names)}: objective {scored.values[0]:.4f}")
    return scored.values, attrs
