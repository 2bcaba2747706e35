"""One sweep worker: Optuna over the LoRA training space with ONE scoring engine for the whole sweep.

A `SweepWorker` holds the study, the engine, the trackers and the live progress; `run()` reads top
to bottom: recover dead workers' trials, check backend parity (vllm), score the base model once
(trial 0, the reference every candidate is compared with), then ask / train / score / tell until
the budget is used. Workers share the study through its storage; start the same sweep again in
another shell or on another machine to add one. Files go where `harness.store` says.

Multi-fidelity (`multi_fidelity.enabled`): n_samples is not sampled but climbed. A trial trains and
scores its config on rung 0 (min_samples), reports the objective to Optuna at step=n_samples, and asks
the pruner (successive halving by default: promoted if in the top 1/eta of the trials that reached this
rung so far, asynchronously) whether to retrain on eta times more rows. Each rung trains from scratch
on the first n rows of the same fixed permutation; a pruned trial keeps its last rung's scores and is
recorded PRUNED with the rung it stopped at.

Faults: see `heartbeat.py`. A failed trial (NaN loss, engine error) is recorded with its reason and
the sweep goes on; bad input (UserError) and Ctrl-C stop it, with the running trial marked failed.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from harness import store
from harness.config import SweepConfig, TrainConfig
from harness.errors import UserError
from harness.models import BaseModel, resolve_base
from harness.runtime.processes import interrupt_name, raise_if_interrupted
from harness.store import TrialAttr as A
from harness.sweep.early_stop import ItemOrder, ScoringStopped
from harness.sweep.heartbeat import HEARTBEAT_S, Heartbeat, recover_stale
from harness.sweep.progress import SweepProgress
from harness.sweep.space import (
    distributions,
    grid_done,
    grid_space,
    make_pruner,
    make_sampler,
    max_lora_rank,
    objectives,
)
from harness.sweep.trackers import make_trackers

log = logging.getLogger(__name__)
S = optuna.trial.TrialState


def check_inputs(cfg: SweepConfig, source: Path, prepare_base: bool = True) -> tuple[BaseModel, dict]:
    """Everything a sweep needs that can be checked without loading a model: the base, every suite
    with its data, templates and metrics, the metrics the objective names, and enough training rows
    for the largest n_samples. `harness validate` and every worker run it first (exit 2 on a problem)."""
    from harness.score.suites import load_suite
    from harness.train.data import training_split
    from harness.train.trainers import check_method_available

    base = resolve_base(cfg.base, prepare=prepare_base)
    suites = {s.suite: load_suite(s.suite, s.limit, scope="sweep", include_path=s.include_path) for s in cfg.suites}
    named = [(f"suites[{i}].metric", s.suite, s.metric) for i, s in enumerate(cfg.suites) if s.metric]
    named += [(f"objectives[{i}]", o.suite, o.metric or None) for i, o in enumerate(cfg.objectives)]
    by_name = {**{s.name: s for s in suites.values()}, **suites}
    for field, ref, metric in named:
        suite = by_name.get(ref)
        if suite is None:
            raise UserError(f"{source}: {field}: suite {ref!r} is not one of the sweep's suites ({', '.join(suites)})")
        if metric is not None and metric not in suite.metric_names:
            raise UserError(f"{source}: {field}: {ref} has no metric {metric!r} (it has: {', '.join(suite.metric_names)})")
    methods = cfg.methods()
    if "sft" in methods:
        training_split(cfg.train.data, cfg.max_samples())
    if pairs := [m for m in methods if m != "sft"]:
        # dpo/orpo trials read preference pairs: train.preference_data, else train.data itself
        training_split(cfg.train.preference_data or cfg.train.data, cfg.max_samples(), preference=True)
        for method in pairs:
            check_method_available(method)
    return base, suites


class SweepWorker:
    def __init__(self, cfg: SweepConfig, source: Path, storage: str | None = None, backend: str | None = None,
                 trackers: list[str] | None = None, console=None, artifacts: str | None = None):
        self.cfg, self.console = cfg, console
        self.backend_kind = backend or cfg.backend
        self.tracker_names = trackers or cfg.trackers
        self.base, self.suites = check_inputs(cfg, source)
        directions, self.objective_fn, meta = objectives(cfg, self.suites)
        self.item_order = (ItemOrder(list(self.suites.values()), meta["weights"], meta["headline"], cfg.scoring.chunk)
                           if cfg.scoring.early_stop != "none" else None)
        store.study_dir(cfg.study).mkdir(parents=True, exist_ok=True)
        self.study = _create_study(cfg, store.storage_for(cfg.study, storage or cfg.storage), directions)
        if store.OBJECTIVE_META not in self.study.user_attrs:  # what a report needs to read this study on its own
            self.study.set_user_attr(store.OBJECTIVE_META, meta)
        self.artifacts = store.open_artifacts(self.study, artifacts or cfg.artifacts, create=True)
        self.engine = self.trackers = self.progress = None

    # ------------------------------------------------------------ the recipe
    def run(self, n_trials: int | None = None, timeout_s: float | None = None) -> optuna.Study:
        from harness.score.backends import create, make_candidate

        cfg = self.cfg
        n_trials = n_trials or cfg.budget.n_trials
        timeout_s = timeout_s or cfg.budget.timeout_s
        if recovered := recover_stale(self.study):
            log.warning("%d trial(s) of a dead worker marked failed and queued again", recovered)
        if self.backend_kind == "vllm":
            self._check_parity()
        options = {"max_lora_rank": max_lora_rank(cfg)} if self.backend_kind == "vllm" else {}
        self.engine = create(self.backend_kind, self.base, [make_candidate("base", self.base)], **options)
        self.trackers = make_trackers(self.tracker_names, cfg.study)
        dists = distributions(cfg)
        grid = grid_space(cfg) if cfg.sampler.name == "grid" else None
        started = time.time()
        try:
            with SweepProgress(self.console, n_trials, len(self._counted())) as self.progress:
                self._ensure_base_trial()
                while len(self._counted()) < n_trials and (timeout_s is None or time.time() - started < timeout_s):
                    raise_if_interrupted()
                    if grid and grid_done(self.study, grid):
                        self.progress.say(f"the grid is done: all {math.prod(map(len, grid.values()))} configurations tried")
                        break
                    trial = self.study.ask(dists)
                    mine = [t for t in self._counted() if t.number <= trial.number]
                    if len(mine) > n_trials:  # another worker took the last slot between our count and ask
                        trial.set_user_attr(A.SURPLUS, True)
                        self.study.tell(trial, state=S.FAIL)
                        break
                    self._run_trial(trial, n_trials)
                if cfg.merge is not None:
                    self._merge_top(cfg.merge)
        finally:
            self.engine.close()
            self.trackers.finish(self.study)
        return self.study

    # ------------------------------------------------------------ steps
    def _check_parity(self) -> None:
        """Once per sweep: the vllm engine must score like transformers+peft on this base (float32)."""
        from harness.runtime.environment import harness_home
        from harness.score.backends import parity

        rows = parity.check(self.base, parity.random_adapters(self.base, harness_home() / "parity" / self.base.identity[:20]))
        bad = [r for r in rows if not r["ok"]]
        if bad:
            raise UserError(f"vllm and hf disagree on {len(bad)}/{len(rows)} parity checks for {self.base.spec} "
                            "(see harness doctor --parity); use --backend hf")
        log.info("parity hf vs vllm: %d/%d checks agree", len(rows), len(rows))

    def _ensure_base_trial(self) -> None:
        """Trial 0 scores the base model once per study, by whichever worker claims it first (see `_claimed`)."""
        from harness.score.backends import make_candidate

        def score_base(trial):
            self.progress.say("trial 0: scoring the base model (the reference)")
            where = store.base_dir(self.cfg.study)
            values, summary, seconds = self._score(make_candidate("base", self.base), where, trial._trial_id)
            attrs = {A.SCORE_S: seconds, A.SCORES: summary.to_dict(orient="records"),
                     A.ARTIFACTS: store.upload_outputs(self.artifacts, where, None, trial, self.study._storage)}
            self.trackers.log_trial("base", {}, summary, values, attrs)
            return values, attrs

        self._claimed({A.CANDIDATE: "base", A.KIND: "base"}, store.is_base_trial, score_base)

    def _claimed(self, attrs: dict, same, work, fatal: bool = True) -> None:
        """Run `work(trial) -> (values, attrs)` on a trial that no other worker, on any machine, runs.

        For what a study needs exactly once (the base model's trial, each merge): the claim is a
        RUNNING trial in the study's storage, created unless one matching `same` exists, complete or
        running. Two workers claiming at once both create one; the lower trial number keeps it and the
        other claim is withdrawn as surplus. A claimant that dies stops its heartbeat, and the next
        worker to start fails the claim (see heartbeat.py), so it is claimed again. A failure is
        recorded on the trial with its reason, and raised if `fatal` (Ctrl-C always)."""
        storage = self.study._storage
        if self._claims(same):
            return
        claim = optuna.trial.create_trial(state=S.RUNNING, params={}, distributions={}, user_attrs={**attrs, A.WORKER: _worker_name()})
        trial_id = storage.create_new_trial(self.study._study_id, template_trial=claim)
        if self._claims(same)[0]._trial_id != trial_id:
            storage.set_trial_user_attr(trial_id, A.SURPLUS, True)
            storage.set_trial_state_values(trial_id, S.FAIL)
            return
        trial = storage.get_trial(trial_id)
        beat = Heartbeat(self.study, trial)
        try:
            values, done = work(trial)
            for key, value in done.items():
                storage.set_trial_user_attr(trial_id, key, value)
            storage.set_trial_state_values(trial_id, S.COMPLETE, values)
        except BaseException as err:
            reason = f"interrupted ({interrupt_name(err)})" if isinstance(err, KeyboardInterrupt) else getattr(err, "reason", None) or str(err)
            storage.set_trial_user_attr(trial_id, A.FAIL_REASON, reason[:500])
            storage.set_trial_state_values(trial_id, S.FAIL)
            if fatal or isinstance(err, KeyboardInterrupt):
                raise
            log.error("trial %d failed: %s", trial.number, reason)
            self.trackers.log_failure(f"trial-{trial.number}", attrs, reason)
        finally:
            beat.stop()

    def _claims(self, same) -> list[optuna.trial.FrozenTrial]:
        """Trials matching `same`, complete or running (lowest number first), withdrawn claims aside."""
        return sorted((t for t in self.study.get_trials(deepcopy=False, states=(S.COMPLETE, S.RUNNING))
                       if same(t) and not t.user_attrs.get(A.SURPLUS)), key=lambda t: t.number)

    def _run_trial(self, trial: optuna.Trial, n_trials: int) -> None:
        """Train, score and tell one trial; a failure is recorded with its reason, never raised (but Ctrl-C and bad input)."""
        cfg, study, say = self.cfg, self.study, self.progress.say
        trial.set_user_attr(A.WORKER, _worker_name())
        params = dict(trial.params)
        beat = Heartbeat(study, trial)
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        multi = cfg.multi_fidelity.enabled
        rungs = cfg.rungs() if multi else [params["n_samples"]]
        climbed = []
        try:
            for i, n_samples in enumerate(rungs):
                where = store.rung_dir(cfg.study, trial.number, n_samples) if multi else store.trial_dir(cfg.study, trial.number)
                step = f" rung {i + 1}/{len(rungs)} n_samples={n_samples}" if multi else ""
                say(f"trial {trial.number} ({len(self._counted())}/{n_trials}){step}: training ({shown})")
                values, summary, attrs = self._train_and_score(trial, {**params, "n_samples": n_samples}, where)
                curve = attrs.pop("loss_curve")
                climbed.append({"n_samples": n_samples, "objective": values[0], A.TRAIN_S: attrs[A.TRAIN_S],
                                A.TOKENS_SEEN: attrs[A.TOKENS_SEEN]})
                # The trial's training cost is every rung it climbed.
                attrs.update({A.N_SAMPLES: n_samples, A.TRAIN_S: sum(r[A.TRAIN_S] for r in climbed),
                              A.TOKENS_SEEN: sum(r[A.TOKENS_SEEN] for r in climbed)})
                if multi:
                    attrs[A.RUNGS] = climbed
                for key, value in attrs.items():
                    trial.set_user_attr(key, value)
                if i < len(rungs) - 1:
                    trial.report(values[0], step=n_samples)
                    if trial.should_prune():
                        reason = f"pruned at n_samples={n_samples}: objective {values[0]:.4f} not promoted by {type(study.pruner).__name__}"
                        trial.set_user_attr(A.FAIL_REASON, reason)
                        self._upload(trial, where)
                        study.tell(trial, state=S.PRUNED)
                        self.trackers.log_failure(f"trial-{trial.number}", {**params, "n_samples": n_samples}, reason)
                        say(f"trial {trial.number}: {reason}")
                        self._show_best()
                        return
            t0 = time.perf_counter()
            self.trackers.log_trial(f"trial-{trial.number}", {**params, "n_samples": rungs[-1]}, summary, values,
                                    {**attrs, "loss_curve": curve, "adapter": str(where / "adapter")})
            tracking_s = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            self._upload(trial, where)
            trial.set_user_attr(A.STAGES, {**attrs[A.STAGES], "tracking": tracking_s, "upload": round(time.perf_counter() - t0, 3)})
            study.tell(trial, values)
            say(f"trial {trial.number}: objective {', '.join(f'{v:.4f}' for v in values)}")
            self._show_best()
        except ScoringStopped as stop:
            trial.set_user_attr(A.FAIL_REASON, stop.reason)
            trial.set_user_attr(A.SCORE_S, stop.seconds)
            self._upload(trial, store.trial_dir(cfg.study, trial.number))
            study.tell(trial, state=S.PRUNED)
            self.trackers.log_failure(f"trial-{trial.number}", params, stop.reason)
            say(f"trial {trial.number}: {stop.reason}")
            self._show_best()
        except KeyboardInterrupt as err:
            trial.set_user_attr(A.FAIL_REASON, f"interrupted ({interrupt_name(err)})")
            study.tell(trial, state=S.FAIL)
            raise
        except UserError:
            study.tell(trial, state=S.FAIL)
            raise
        except Exception as err:  # noqa: BLE001 - one failed trial (NaN loss, engine error) does not stop the sweep
            from harness.train import TrainingFailed

            reason = err.reason if isinstance(err, TrainingFailed) else f"{type(err).__name__}: {err}"
            log.error("trial %d failed: %s", trial.number, reason)
            trial.set_user_attr(A.FAIL_REASON, reason[:500])
            study.tell(trial, state=S.FAIL)
            self.trackers.log_failure(f"trial-{trial.number}", params, reason)
        finally:
            beat.stop()

    def _train_and_score(self, trial: optuna.Trial, params: dict, where: Path):
        """One adapter on `params`, scored on every suite into `where`; returns values, summary, trial attrs."""
        from harness.score.backends import make_candidate
        from harness.train import train

        fields = {**self.cfg.train.model_dump(exclude={"init"}), **params, "seed": self.cfg.seed + trial.number}
        parent = self._best_sft() if fields["method"] == "dpo" and self.cfg.train.init == "best_sft" else None
        if parent is not None:
            fields["init_adapter"] = self.artifacts.fetch_folder(parent.user_attrs[A.ARTIFACTS]["adapter"])
            self.progress.say(f"trial {trial.number}: dpo from trial-{parent.number}'s sft adapter")
        tcfg = TrainConfig(**fields)
        adapter = where / "adapter"
        if adapter.exists():  # a complete adapter from an attempt that died while scoring
            shutil.rmtree(adapter)
        record = train(self.base, tcfg, adapter)
        self.progress.say(f"trial {trial.number}: scoring {', '.join(s.name for s in self.suites.values())}")
        cand = make_candidate(f"trial-{trial.number}", self.base, adapter)
        t0 = time.perf_counter()
        self.engine.add_candidates([cand])  # hf: loads the adapter now; vllm: on its first request (inside scoring)
        adapter_s = round(time.perf_counter() - t0, 3)
        values, summary, seconds = self._score(cand, where, trial._trial_id, stoppable=True)
        suite_s = store.read_scores(where).get("seconds", {})
        # W2 (bench/trial_anatomy.py): where a trial's time goes.
        stages = {"model load": record["load_s"], "training": record["train_s"], "held-out loss": record["heldout_eval_s"],
                  "adapter load": adapter_s, **{f"scoring {name}": s for name, s in suite_s.items()},
                  "scoring overhead (items, CIs)": round(max(seconds - sum(suite_s.values()), 0.0), 3)}
        attrs = {A.KIND: "sft→dpo" if parent is not None else tcfg.method, A.TRAIN_S: record["train_s"], A.TOKENS_SEEN: record["tokens_seen"],
                 A.SCORE_S: seconds, A.SCORES: summary.to_dict(orient="records"), "loss_curve": record["loss_curve"], A.STAGES: stages}
        if parent is not None:
            # What this candidate is and cost: the sft adapter's rank, its rows plus these pairs.
            first = store.params_of(parent)
            attrs[A.PARENTS] = [store.candidate_name(parent)]
            attrs[A.PARAMS] = {**params, "lora_r": first["lora_r"], "n_samples": params["n_samples"] + first["n_samples"]}
        return values, summary, attrs

    def _best_sft(self) -> optuna.trial.FrozenTrial | None:
        """The best complete sft trial so far (a dpo trial's starting point under `init: best_sft`)."""
        sft = [t for t in self.study.get_trials(deepcopy=False, states=(S.COMPLETE,)) if t.user_attrs.get(A.KIND) == "sft"]
        if not sft:
            self.progress.say("no sft trial is complete yet: this dpo trial starts from the base")
            return None
        return self._ranked(sft)[0]

    def _ranked(self, trials: list) -> list:
        """Best first, by the (single) objective's direction."""
        maximize = self.study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        return sorted(trials, key=lambda t: t.values[0], reverse=maximize)

    # ------------------------------------------------------------ merged candidates
    def _merge_top(self, spec) -> None:
        """After the budget: for each merge method, one merged candidate of the top_k complete trials,
        scored like any trial. Claimed like the base (one worker per method); the merge waits until no
        trial is running anywhere, so every worker's trials compete for the top_k."""
        while running := [t for t in self.study.get_trials(deepcopy=False, states=(S.RUNNING,)) if not _claim_kind(t)]:
            self.progress.say(f"merging after {len(running)} running trial(s) finish")
            time.sleep(HEARTBEAT_S)
            recover_stale(self.study)
        for method in spec.methods:
            self._claimed({A.KIND: "merge", A.MERGE_METHOD: method},
                          lambda t, m=method: t.user_attrs.get(A.KIND) == "merge" and t.user_attrs.get(A.MERGE_METHOD) == m,
                          lambda trial, m=method: self._merge_trial(trial, m, spec), fatal=False)

    def _merge_trial(self, trial, method: str, spec):
        from harness.score.backends import make_candidate
        from harness.train import merge as merging

        trained = [t for t in self.study.get_trials(deepcopy=False, states=(S.COMPLETE,)) if not _claim_kind(t)]
        parents = self._ranked(trained)[:spec.top_k]
        if len(parents) < 2:
            raise RuntimeError(f"merge {method}: {len(parents)} complete trial(s); a merge needs at least 2")
        names = [store.candidate_name(t) for t in parents]
        self.progress.say(f"trial {trial.number}: merging {', '.join(names)} ({method})")
        where = store.trial_dir(self.cfg.study, trial.number)
        adapter = where / "adapter"
        if adapter.exists():
            shutil.rmtree(adapter)
        folders = [(n, self.artifacts.fetch_folder(t.user_attrs[A.ARTIFACTS]["adapter"])) for n, t in zip(names, parents, strict=True)]
        record = merging.merge(self.base, folders, method, adapter, density=spec.density)
        cand = make_candidate(store.candidate_name(trial), self.base, adapter)
        self.engine.add_candidates([cand])
        values, summary, seconds = self._score(cand, where, trial._trial_id)
        # A merge trains nothing: its cost is its parents' (their samples, their training time).
        cost = {"n_samples": sum(store.params_of(t).get("n_samples", 0) for t in parents), "lora_r": record["r"]}
        attrs = {A.PARENTS: names, A.PARAMS: cost, A.TRAIN_S: sum(t.user_attrs.get(A.TRAIN_S, 0.0) for t in parents),
                 A.TOKENS_SEEN: sum(t.user_attrs.get(A.TOKENS_SEEN, 0) for t in parents), A.SCORE_S: seconds,
                 A.SCORES: summary.to_dict(orient="records"),
                 A.ARTIFACTS: store.upload_outputs(self.artifacts, where, adapter, trial, self.study._storage)}
        self.trackers.log_trial(store.candidate_name(trial), cost, summary, values, {**attrs, "adapter": str(adapter)})
        self.progress.say(f"trial {trial.number}: merge {method} of {', '.join(names)}: objective {values[0]:.4f}")
        return values, attrs

    def _upload(self, trial: optuna.Trial, where: Path) -> None:
        """Before the trial is told: its items, scores, train.json and adapter go to the artifact store,
        where every machine's readers find them (the folder `where` is this worker's scratch space)."""
        trial.set_user_attr(A.ARTIFACTS, store.upload_outputs(self.artifacts, where, where / "adapter", trial))

    def _score(self, cand, out_dir: Path, trial_id: int | None = None, stoppable: bool = False):
        """`cand` on every suite into out_dir -> (objective values, summary, seconds).

        With early stopping (early_stop.py) every item's share of the objective is reported to the
        trial, and a `stoppable` trial is scored chunk by chunk: ScoringStopped once the study's
        pruner finds it significantly worse than the best completed trial on the same items."""
        from harness.score.evaluate import evaluate, write_scores
        from harness.stats import summarize

        t0 = time.perf_counter()
        order = self.item_order if trial_id is not None else None
        parts = order.chunks() if order is not None and stoppable else [list(self.suites.values())]
        storage, frames, suite_s = self.study._storage, [], {}
        for i, suites in enumerate(parts):
            frame, _, failures = evaluate(self.base, [cand], suites, out_dir=out_dir, backend=self.engine, live=self.progress.bar)
            if failures:
                raise RuntimeError("; ".join(f"suite {f.suite} failed: {f.reason}" for f in failures))
            frames.append(frame)
            for name, s in store.read_scores(out_dir).get("seconds", {}).items():
                suite_s[name] = round(suite_s.get(name, 0.0) + s, 3)
            if order is None:
                continue
            for step, value in order.values(frame).items():
                storage.set_trial_intermediate_value(trial_id, step, value)
            if stoppable and i < len(parts) - 1 and self.study.pruner.prune(self.study, storage.get_trial(trial_id)):
                scored = sum(map(len, frames))
                best = self.study.best_trial
                raise ScoringStopped(f"scoring stopped after {scored} of {len(order)} items: significantly worse than "
                                     f"{store.candidate_name(best)} on them (Wilcoxon signed-rank, p < {self.cfg.scoring.alpha})",
                                     round(time.perf_counter() - t0, 3))
        if len(parts) > 1:  # scores.json for the whole run, not its last chunk
            write_scores(out_dir, [cand], list(self.suites.values()), [], self.engine, suite_s)
        summary = summarize(pd.concat(frames, ignore_index=True))
        means = {(r.suite, r.metric): r.value for r in summary.itertuples()}
        return self.objective_fn(means), summary, time.perf_counter() - t0

    def outcome(self) -> SweepOutcome:
        """What the study holds now: trials completed (the base aside) and why the others failed."""
        trials = [t for t in self.study.get_trials(deepcopy=False) if not store.is_base_trial(t) and not t.user_attrs.get(A.SURPLUS)]
        failed = [t for t in trials if t.state in (S.FAIL, S.PRUNED)]
        reasons = Counter(_reason_kind(t.user_attrs.get(A.FAIL_REASON, "no reason recorded")) for t in failed)
        return SweepOutcome(sum(t.state == S.COMPLETE for t in trials), len(failed), dict(reasons.most_common()))

    # ------------------------------------------------------------ study state
    def _counted(self) -> list[optuna.trial.FrozenTrial]:
        """Trials that use the budget: not the base, not a dead worker's (retried), not a surplus ask."""
        return [t for t in self.study.get_trials(deepcopy=False)
                if not _claim_kind(t) and not t.user_attrs.get(A.SURPLUS)
                and not (t.state == S.FAIL and "retried" in t.user_attrs.get(A.FAIL_REASON, ""))
                and t.state in (S.COMPLETE, S.RUNNING, S.FAIL, S.PRUNED)]

    def _show_best(self) -> None:
        """Update the live line: trials finished, and the best so far (single objective) with its params."""
        finished = len([t for t in self._counted() if t.state != S.RUNNING])
        if len(self.study.directions) > 1:
            self.progress.trial_done(finished, None, None, None)
            return
        best = max(self.study.best_trials, key=lambda t: t.values[0])
        self.progress.trial_done(finished, best.number, best.values[0], store.params_of(best))


@dataclass
class SweepOutcome:
    completed: int  # trials told COMPLETE, the base not counted
    failed: int  # FAIL or PRUNED (retried dead workers' trials included)
    reasons: dict[str, int]  # failure reason -> how many trials

    def failure_lines(self) -> list[str]:
        if not self.failed:
            return []
        return [f"{self.failed} trial(s) failed or were pruned:"] + [f"  {n} x {reason}" for reason, n in self.reasons.items()]


def _claim_kind(t: optuna.trial.FrozenTrial) -> bool:
    """The base model's trial or a merge: claimed once per study, not a trial of the budget."""
    return t.user_attrs.get(A.KIND) in ("base", "merge") or store.is_base_trial(t)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _reason_kind(reason: str) -> str:
    """A failure reason without what differs between trials (numbers), so equal causes group together."""
    return re.sub(r"\d+(\.\d+)?", "N", reason.splitlines()[0])[:160] if reason else reason


def _create_study(cfg: SweepConfig, storage, directions) -> optuna.Study:
    """Create-or-load, retried: workers racing on an empty SQLite/PostgreSQL schema can collide once."""
    for attempt in range(5):
        try:
            return optuna.create_study(study_name=cfg.study, storage=storage, sampler=make_sampler(cfg), pruner=make_pruner(cfg),
                                       directions=directions, load_if_exists=True)
        except Exception as err:  # noqa: BLE001 - integrity/operational errors of the race
            if attempt == 4:
                raise
            log.info("study creation raced (%s); retrying", type(err).__name__)
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")
