"""One sweep worker: Optuna over the LoRA training space with ONE scoring engine for the whole sweep.

A `SweepWorker` holds the study, the engine, the trackers and the live progress; `run()` reads top
to bottom: recover dead workers' trials, check backend parity (vllm), score the base model once
(trial 0, the reference every candidate is compared with), then ask / train / score / tell until
the budget is used, then the replicates of the top configurations (replicates.py), then the merged
candidates. Workers share the study through its storage; start
the same sweep again in another shell or on another machine to add one. Files go where
`harness.store.paths` says.

Multi-fidelity (`multi_fidelity.enabled`): n_samples is not sampled but climbed. A trial trains and
scores its config on rung 0 (min_samples), reports the objective to Optuna at step=n_samples, and asks
the pruner (successive halving by default: promoted if in the top 1/eta of the trials that reached this
rung so far, asynchronously) whether to retrain on eta times more rows. Each rung trains from scratch
on the first n rows of the same fixed permutation; a pruned trial keeps its last rung's scores and is
recorded PRUNED with the rung it stopped at.

Adaptive sizes (`n_samples: {adaptive: ...}`): before each ask, the learning-curve forecast of the
trials so far names the next size (forecast/planning.py), queued with why; the sweep ends when the
forecast answers the question, or at the budget.

Faults: see `heartbeat.py`. A failed trial (NaN loss, engine error) is recorded with its reason and
the sweep goes on; bad input (UserError) and Ctrl-C stop it, with the running trial marked failed.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path

import optuna

from harness.config import SweepConfig, TrainConfig
from harness.errors import UserError
from harness.runtime.processes import interrupt_name, raise_if_interrupted
from harness.score.backends import create, make_candidate, parity, vllm_support
from harness.store import paths
from harness.store.study import ADAPTIVE_META, OBJECTIVE_META, StudyHandle, candidate_name, is_base_trial, open_artifacts, params_of, storage_for
from harness.store.study import TrialAttr as A
from harness.sweep.claims import is_claim, run_claimed, wait_for_claim, worker_name
from harness.sweep.early_stop import ItemOrder, TrialStopped
from harness.sweep.heartbeat import Heartbeat, recover_stale
from harness.sweep.inputs import check_inputs
from harness.sweep.merges import merge_top
from harness.sweep.outcome import SweepOutcome
from harness.sweep.progress import SweepProgress
from harness.sweep.replicates import replicate_top
from harness.sweep.space import distributions, grid_done, grid_space, make_pruner, make_sampler, max_lora_rank, objectives
from harness.sweep.trackers import make_trackers
from harness.sweep.trial_scoring import TrialScorer
from harness.train import TrainingFailed, train

log = logging.getLogger(__name__)
S = optuna.trial.TrialState


class SweepWorker:
    def __init__(self, cfg: SweepConfig, source: Path, console=None):
        """`cfg`: the sweep file's config with the command line's options applied (`SweepOptions.apply`)."""
        self.cfg, self.console = cfg, console
        self.base, self.suites = check_inputs(cfg, source)
        directions, self.objective_fn, meta = objectives(cfg, self.suites)
        paths.study_dir(cfg.study).mkdir(parents=True, exist_ok=True)
        self.handle = StudyHandle.create(cfg.study, storage_for(cfg.study, cfg.storage), make_sampler(cfg), make_pruner(cfg), directions)
        self.study = self.handle.study
        if OBJECTIVE_META not in self.study.user_attrs:  # what a report needs to read this study on its own
            self.study.set_user_attr(OBJECTIVE_META, meta)
        self.artifacts = open_artifacts(self.study, cfg.artifacts, create=True)
        self.item_order = (ItemOrder(list(self.suites.values()), meta["weights"], meta["headline"], cfg.scoring.chunk,
                                     cfg.scoring.min_items)
                           if cfg.scoring.early_stop != "none" else None)
        self.engine = self.trackers = self.progress = self.scorer = None

    # ------------------------------------------------------------ the recipe
    def run(self) -> optuna.Study:
        cfg = self.cfg
        n_trials, timeout_s = cfg.budget.n_trials, cfg.budget.timeout_s
        if recovered := recover_stale(self.handle):
            log.warning("%d trial(s) of a dead worker marked failed and queued again", recovered)
        if cfg.backend == "vllm" or (cfg.backend == "auto" and vllm_support.base_unsupported(self.base) is None):
            self._check_parity()
        options = {"max_lora_rank": max_lora_rank(cfg)} if cfg.backend in ("vllm", "auto") else {}
        self.engine = create(cfg.backend, self.base, [make_candidate("base", self.base)], **options)
        self.trackers = make_trackers(cfg.trackers, cfg.study)
        dists = distributions(cfg)
        grid = grid_space(cfg) if cfg.sampler.name == "grid" else None
        started = time.time()
        try:
            with SweepProgress(self.console, n_trials, len(self._counted())) as self.progress:
                self.scorer = TrialScorer(self.handle, self.engine, list(self.suites.values()), self.objective_fn, self.item_order,
                                          cfg.scoring.alpha, self.progress.bar)
                self._ensure_base_trial()
                while len(self._counted()) < n_trials and (timeout_s is None or time.time() - started < timeout_s):
                    raise_if_interrupted()
                    if grid and grid_done(self.study, grid):
                        self.progress.say(f"the grid is done: all {math.prod(map(len, grid.values()))} configurations tried")
                        break
                    if cfg.adaptive is not None and not self._enqueue_next_size():
                        break
                    trial = self.study.ask(dists)
                    mine = [t for t in self._counted() if t.number <= trial.number]
                    if len(mine) > n_trials:  # another worker took the last slot between our count and ask
                        trial.set_user_attr(A.SURPLUS, True)
                        self.study.tell(trial, state=S.FAIL)
                        break
                    self.run_trial(trial, n_trials)
                if timeout_s is not None and len(self._counted()) < n_trials and time.time() - started >= timeout_s:
                    self.progress.say(f"the timeout ({timeout_s:g} s) has passed: no further trial started "
                                      f"({len(self._counted())} of {n_trials} counted)")
                # A base claimed by a worker that died is not left unscored: once its heartbeat is stale, it is ours.
                wait_for_claim(self.handle, is_base_trial, self.progress.say)
                self._ensure_base_trial()
                if cfg.replicates.seeds > 1:
                    replicate_top(self, cfg.replicates, dists)
                if cfg.merge is not None:
                    merge_top(self, cfg.merge)
        finally:
            self.engine.close()
            self.trackers.finish(self.study)
        return self.study

    def outcome(self) -> SweepOutcome:
        return SweepOutcome.of(self.handle)

    # ------------------------------------------------------------ steps
    def _check_parity(self) -> None:
        """Once per sweep: the vllm engine must score like transformers+peft on this base (float32)."""
        rows = parity.check(self.base)
        bad = [r for r in rows if not r["ok"]]
        if bad:
            raise UserError(f"vllm and hf disagree on {len(bad)}/{len(rows)} parity checks for {self.base.spec} "
                            "(see harness doctor --parity); use --backend hf")
        log.info("parity hf vs vllm: %d/%d checks agree", len(rows), len(rows))

    def _ensure_base_trial(self) -> None:
        """Trial 0 scores the base model once per study, by whichever worker claims it first (claims.py)."""

        def score_base(trial):
            self.progress.say("trial 0: scoring the base model (the reference)")
            where = paths.base_dir(self.cfg.study)
            trial_id = self.handle.trial_id(trial)
            scored = self.scorer.score(make_candidate("base", self.base), where, trial_id)
            attrs = {A.SCORE_S: scored.seconds, A.SCORES: scored.summary.to_dict(orient="records"),
                     A.ARTIFACTS: self.handle.upload_outputs(self.artifacts, trial_id, where, None)}
            self.trackers.log_trial("base", {}, scored.summary, scored.values, attrs)
            return scored.values, attrs

        run_claimed(self.handle, {A.CANDIDATE: "base", A.KIND: "base"}, is_base_trial, score_base)

    def run_trial(self, trial: optuna.Trial, n_trials: int) -> None:
        """Train, score and tell one trial. It ends COMPLETE, or through one path with its reason:
        PRUNED (a rung not promoted, or scoring stopped early) or FAIL (NaN loss, engine error: the
        sweep goes on; bad input and interrupts: recorded, then raised)."""
        cfg, say = self.cfg, self.progress.say
        trial.set_user_attr(A.WORKER, worker_name())
        params = dict(trial.params)
        beat = Heartbeat(self.handle, self.handle.trial_id(trial))
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        multi = cfg.multi_fidelity.enabled
        rungs = cfg.rungs() if multi else [params["n_samples"]]
        climbed, where = [], paths.trial_dir(cfg.study, trial.number)
        try:
            for i, n_samples in enumerate(rungs):
                where = paths.rung_dir(cfg.study, trial.number, n_samples) if multi else where
                step = f" rung {i + 1}/{len(rungs)} n_samples={n_samples}" if multi else ""
                say(f"trial {trial.number} ({len(self._counted())}/{n_trials}){step}: training ({shown})")
                scored, attrs = self._train_and_score(trial, {**params, "n_samples": n_samples}, where)
                curve = attrs.pop("loss_curve")
                climbed.append({"n_samples": n_samples, "objective": scored.values[0], A.TRAIN_S: attrs[A.TRAIN_S],
                                A.TOKENS_SEEN: attrs[A.TOKENS_SEEN]})
                # The trial's training cost is every rung it climbed.
                attrs.update({A.N_SAMPLES: n_samples, A.TRAIN_S: sum(r[A.TRAIN_S] for r in climbed),
                              A.TOKENS_SEEN: sum(r[A.TOKENS_SEEN] for r in climbed)})
                if multi:
                    attrs[A.RUNGS] = climbed
                for key, value in attrs.items():
                    trial.set_user_attr(key, value)
                if i < len(rungs) - 1:
                    trial.report(scored.values[0], step=n_samples)
                    if trial.should_prune():
                        raise TrialStopped(f"pruned at n_samples={n_samples}: objective {scored.values[0]:.4f} not promoted by "
                                           f"{type(self.study.pruner).__name__}", {"n_samples": n_samples})
            t0 = time.perf_counter()
            self.trackers.log_trial(f"trial-{trial.number}", {**params, "n_samples": rungs[-1]}, scored.summary, scored.values,
                                    {**attrs, "loss_curve": curve, "adapter": str(paths.adapter_dir(where))})
            tracking_s = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            self._upload(trial, where)
            trial.set_user_attr(A.STAGES, {**attrs[A.STAGES], "tracking": tracking_s, "upload": round(time.perf_counter() - t0, 3)})
            self.study.tell(trial, scored.values)
            say(f"trial {trial.number}: objective {', '.join(f'{v:.4f}' for v in scored.values)}")
        except TrialStopped as stop:
            self._end(trial, S.PRUNED, stop.reason, {**params, **stop.params}, {**stop.attrs, A.FAIL_REASON: stop.reason}, where)
        except (KeyboardInterrupt, UserError) as err:
            reason = f"interrupted ({interrupt_name(err)})" if isinstance(err, KeyboardInterrupt) else None
            self._end(trial, S.FAIL, reason, params, {A.FAIL_REASON: reason} if reason else {}, tell_only=True)
            raise
        except Exception as err:  # noqa: BLE001 - one failed trial (NaN loss, engine error) does not stop the sweep
            reason = err.reason if isinstance(err, TrainingFailed) else f"{type(err).__name__}: {err}"
            log.error("trial %d failed: %s", trial.number, reason)
            self._end(trial, S.FAIL, reason, params, {A.FAIL_REASON: reason[:500]})
        else:
            self._show_best()
        finally:
            beat.stop()

    def _end(self, trial: optuna.Trial, state, reason: str | None, params: dict, attrs: dict, scratch: Path | None = None,
             tell_only: bool = False) -> None:
        """The one way a trial ends other than COMPLETE: its reason recorded, what it scored uploaded
        (`scratch`), the study told; unless `tell_only` (an interrupt, bad input), the trackers hear of
        it, and of a pruned trial the live line too."""
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if scratch is not None:
            self._upload(trial, scratch)
        self.study.tell(trial, state=state)
        if tell_only:
            return
        self.trackers.log_failure(f"trial-{trial.number}", params, reason)
        if state == S.PRUNED:
            self.progress.say(f"trial {trial.number}: {reason}")
            self._show_best()

    def _train_and_score(self, trial: optuna.Trial, params: dict, where: Path):
        """One adapter on `params`, scored on every suite into `where`; returns the scoring and the trial's attrs."""
        fields = {**self.cfg.train.model_dump(exclude={"init"}), **params, "seed": self.cfg.seed + trial.number}
        parent = self._best_sft() if fields["method"] == "dpo" and self.cfg.train.init == "best_sft" else None
        if parent is not None:
            fields["init_adapter"] = self.artifacts.fetch_folder(parent.user_attrs[A.ARTIFACTS]["adapter"])
            self.progress.say(f"trial {trial.number}: dpo from trial-{parent.number}'s sft adapter")
        tcfg = TrainConfig(**fields)
        adapter = paths.adapter_dir(where)
        if adapter.exists():  # a complete adapter from an attempt that died while scoring
            shutil.rmtree(adapter)
        record = train(self.base, tcfg, adapter)
        self.progress.say(f"trial {trial.number}: scoring {', '.join(s.name for s in self.suites.values())}")
        cand = make_candidate(f"trial-{trial.number}", self.base, adapter)
        t0 = time.perf_counter()
        self.engine.add_candidates([cand])  # hf: loads the adapter now; vllm: on its first request (inside scoring)
        adapter_s = round(time.perf_counter() - t0, 3)
        # A replicate measures seed noise: scored whole, never stopped.
        scored = self.scorer.score(cand, where, self.handle.trial_id(trial), stoppable=A.REPLICATE_OF not in trial.user_attrs)
        # W2 (bench/trial_anatomy.py): where a trial's time goes.
        stages = {"model load": record["load_s"], "training": record["train_s"], "held-out loss": record["heldout_eval_s"],
                  "adapter load": adapter_s, **{f"scoring {name}": s for name, s in scored.suite_seconds.items()},
                  "scoring overhead (items, CIs)": round(max(scored.seconds - sum(scored.suite_seconds.values()), 0.0), 3)}
        attrs = {A.KIND: "sft→dpo" if parent is not None else tcfg.method, A.TRAIN_S: record["train_s"], A.TOKENS_SEEN: record["tokens_seen"],
                 A.SCORE_S: scored.seconds, A.SCORES: scored.summary.to_dict(orient="records"), "loss_curve": record["loss_curve"],
                 A.STAGES: stages}
        if parent is not None:
            # What this candidate is and cost: the sft adapter's rank, its rows plus these pairs.
            first = params_of(parent)
            attrs[A.PARENTS] = [candidate_name(parent)]
            attrs[A.PARAMS] = {**params, "lora_r": first["lora_r"], "n_samples": params["n_samples"] + first["n_samples"]}
        return scored, attrs

    def _best_sft(self) -> optuna.trial.FrozenTrial | None:
        """The best complete sft trial so far (a dpo trial's starting point under `init: best_sft`)."""
        sft = [t for t in self.handle.trials(states=(S.COMPLETE,)) if t.user_attrs.get(A.KIND) == "sft"]
        if not sft:
            self.progress.say("no sft trial is complete yet: this dpo trial starts from the base")
            return None
        return self.ranked(sft)[0]

    def ranked(self, trials: list) -> list:
        """Best first, by the (single) objective's direction."""
        maximize = self.study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        return sorted(trials, key=lambda t: t.values[0], reverse=maximize)

    def _upload(self, trial: optuna.Trial, where: Path) -> None:
        """Before the trial is told: its items, scores, train.json and adapter go to the artifact store,
        where every machine's readers find them (the folder `where` is this worker's scratch space)."""
        ids = self.handle.upload_outputs(self.artifacts, self.handle.trial_id(trial), where, paths.adapter_dir(where))
        trial.set_user_attr(A.ARTIFACTS, ids)

    def _enqueue_next_size(self) -> bool:
        """Adaptive n_samples: queue the size the forecast of the trials so far asks for (planning.py);
        False once the forecast answers the question or cannot be helped within max."""
        from harness.forecast import Curve
        from harness.forecast.inputs import curve_metric, study_items
        from harness.forecast.planning import next_size
        from harness.store.reading import load_study

        spec = self.cfg.adaptive
        curve, metric = None, None
        if any(not is_base_trial(t) for t in self.handle.trials(states=(S.COMPLETE,))):
            data = load_study(self.cfg.study, self.cfg.storage, self.cfg.artifacts)
            metric = curve_metric(data, spec.goal if spec.target else None)
            frame, _ = study_items(data, metric)
            curve = Curve.from_items(frame, f"study {self.cfg.study}")
        step = next_size(curve, spec, metric or "")
        if step.n is None:
            self.progress.say(f"adaptive n_samples: {step.why}")
            self.study.set_user_attr(ADAPTIVE_META, step.why)
            return False
        self.progress.say(f"adaptive n_samples: next {step.n}: {step.why}")
        self.study.enqueue_trial({"n_samples": step.n}, user_attrs={A.CHOSEN_BECAUSE: step.why}, skip_if_exists=False)
        return True

    # ------------------------------------------------------------ study state
    def _counted(self) -> list[optuna.trial.FrozenTrial]:
        """Trials that use the budget: not the base, not a dead worker's (retried), not a surplus ask, not a replicate."""
        return [t for t in self.handle.trials()
                if not is_claim(t) and not t.user_attrs.get(A.SURPLUS) and A.REPLICATE_OF not in t.user_attrs
                and not (t.state == S.FAIL and "retried" in t.user_attrs.get(A.FAIL_REASON, ""))
                and t.state in (S.COMPLETE, S.RUNNING, S.FAIL, S.PRUNED)]

    def _show_best(self) -> None:
        """Update the live line: trials finished, and the best so far (single objective) with its params."""
        finished = len([t for t in self._counted() if t.state != S.RUNNING])
        if len(self.study.directions) > 1:
            self.progress.trial_done(finished, None, None, None)
            return
        best = max(self.study.best_trials, key=lambda t: t.values[0])
        self.progress.trial_done(finished, best.number, best.values[0], params_of(best))
