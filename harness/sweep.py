"""`harness sweep`: Optuna over the LoRA training space, one scoring engine per worker.

Layout: runs/<study>/journal.log (default storage), runs/<study>/trial-<n>/adapter (peft + train.json)
and runs/<study>/trial-<n>/items.parquet (per-item scores). Trial 0 is the base model, the reference
every candidate is compared with. Workers share the study through its storage; each keeps one
engine for the whole sweep and adds each trial's adapter to it.

Multi-fidelity (`multi_fidelity.enabled`): n_samples is not sampled but climbed. A trial trains and
scores its config on rung 0 (min_samples), reports the objective to Optuna at step=n_samples, and asks
the pruner (successive halving by default: promoted if in the top 1/eta of the trials that reached this
rung so far, asynchronously) whether to retrain on eta times more rows. Each rung trains from scratch
on the first n rows of the same fixed permutation (runs/<study>/trial-<n>/n<samples>/); a pruned trial
keeps its last rung's scores and is recorded PRUNED with the rung it stopped at.

Faults: a running trial touches runs/<study>/trial-<n>/heartbeat; a worker starting up marks
RUNNING trials whose heartbeat is older than STALE_S as FAIL ("worker died") and re-enqueues their
params, so a SIGKILLed worker's trial is retried by whoever runs next. This works on every storage
(Optuna's own heartbeat does not cover journal files).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import optuna

from harness.config import SweepConfig, TrainConfig
from harness.errors import UserError
from harness.progress import SweepProgress

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0
STALE_S = float(os.environ.get("HARNESS_STALE_S", "60"))  # a heartbeat older than this: the worker died
BASE_ATTR = "candidate"


def study_dir(cfg: SweepConfig) -> Path:
    return Path("runs") / cfg.study


def make_storage(cfg: SweepConfig, url: str | None = None):
    return storage_for(cfg.study, url or cfg.storage)


def storage_for(study: str, url: str | None = None):
    """A study's storage: the URL given, else its journal file under runs/<study>/."""
    if url is None:
        path = Path("runs") / study / "journal.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg2:", "mysql:")):
        # Workers racing on an empty schema can collide while Optuna creates and stamps its tables;
        # the loser retries and finds them made.
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            except Exception as err:  # noqa: BLE001 - sqlalchemy/alembic integrity and operational errors
                if attempt == 4:
                    raise
                log.info("storage schema creation raced (%s); retrying", type(err).__name__)
                time.sleep(0.5 + attempt)
    raise UserError(f"--storage {url}: expected sqlite:///..., postgresql://... (or nothing: a journal file under runs/)")


def distributions(cfg: SweepConfig) -> dict:
    """What the sampler searches; with multi_fidelity, n_samples is climbed by rungs, not sampled."""
    dists = {}
    for name, p in cfg.space.items():
        if name == "n_samples" and cfg.multi_fidelity.enabled:
            continue
        if p.type == "categorical":
            dists[name] = optuna.distributions.CategoricalDistribution(p.choices)
        elif p.type == "int":
            dists[name] = optuna.distributions.IntDistribution(p.low, p.high, step=p.step, log=p.log)
        else:
            dists[name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)
    return dists


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid, less its `study.stop()` once the grid is done: outside `study.optimize` (a sweep
    asks and tells) that call raises inside `tell`, after the trial was already told. The sweep's
    loop stops at the end of the grid itself (`grid_done`)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def grid_space(cfg: SweepConfig) -> dict[str, list]:
    searched = {n: p for n, p in cfg.space.items() if not (n == "n_samples" and cfg.multi_fidelity.enabled)}
    bad = [n for n, p in searched.items() if p.type != "categorical"]
    if bad:
        raise UserError(f"sampler grid: every parameter must be categorical ({', '.join(bad)} are not)")
    return {n: list(p.choices) for n, p in searched.items()}


def grid_done(study: optuna.Study, grid: dict[str, list]) -> bool:
    """Every configuration of the grid tried or running, and no retry waiting."""
    S = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    if any(t.state == S.WAITING for t in trials):
        return False
    seen = {tuple(t.params.get(n) for n in grid) for t in trials if t.params}
    return all(combo in seen for combo in itertools.product(*grid.values()))


def make_sampler(cfg: SweepConfig):
    s = cfg.sampler
    if s.name == "grid":
        return GridSampler(grid_space(cfg), seed=s.seed)
    factories = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=s.seed, multivariate=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=s.seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=s.seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=s.seed),
        "nsgaii": lambda: optuna.samplers.NSGAIISampler(seed=s.seed),
    }
    return factories[s.name]()


def objectives(cfg: SweepConfig, suites) -> tuple[list[str], callable]:
    """Directions and a function (suite -> mean of its metric) -> objective values."""
    metric_of = {s.suite: s.metric for s in cfg.suites}
    if cfg.objectives:
        names = {ref: suite.name for ref, suite in suites.items()}

        def values(means: dict) -> list[float]:
            return [means[(o.suite if o.suite in means else names.get(o.suite, o.suite), o.metric)] for o in cfg.objectives]

        return [o.direction for o in cfg.objectives], values
    weights = {suite.name: next(s.weight for s in cfg.suites if s.suite == ref) for ref, suite in suites.items()}
    headline = {suite.name: metric_of[ref] or suite.headline for ref, suite in suites.items()}

    def weighted(means: dict) -> list[float]:
        return [sum(w * means[(name, headline[name])] for name, w in weights.items() if w)]

    return ["maximize"], weighted


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


def recover_stale(study: optuna.Study, root: Path) -> int:
    """Fail RUNNING trials whose heartbeat stopped, and queue their params again."""
    recovered = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        beat = root / f"trial-{t.number}" / "heartbeat"
        age = time.time() - (beat.stat().st_mtime if beat.exists() else t.datetime_start.timestamp())
        if age > STALE_S:
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", f"worker died (no heartbeat for {age:.0f} s); retried")
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            if t.params:
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            recovered += 1
    return recovered


def _counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that use the budget: not the base, not a dead worker's (retried), not a surplus ask."""
    S = optuna.trial.TrialState
    return [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(BASE_ATTR) != "base" and not t.user_attrs.get("surplus")
            and not (t.state == S.FAIL and "retried" in t.user_attrs.get("fail_reason", ""))
            and t.state in (S.COMPLETE, S.RUNNING, S.FAIL, S.PRUNED)]


def _means(summary) -> dict:
    return {(r.suite, r.metric): r.value for r in summary.itertuples()}


def _score(engine, base, cand, suites, out_dir: Path, objective_fn, progress):
    from harness.score import evaluate

    t0 = time.perf_counter()
    _, summary, failures = evaluate(base, [cand], list(suites.values()), out_dir=out_dir, backend=engine, live=progress.bar)
    if failures:
        raise RuntimeError("; ".join(f"suite {f.suite} failed: {f.reason}" for f in failures))
    return objective_fn(_means(summary)), summary, time.perf_counter() - t0


def _check_parity(base) -> None:
    """Once per sweep: the vllm engine must score like transformers+peft on this base (float32)."""
    from harness import parity
    from harness.environment import harness_home

    rows = parity.check(base, parity.random_adapters(base, harness_home() / "parity" / base.identity[:20]))
    bad = [r for r in rows if not r["ok"]]
    if bad:
        raise UserError(f"vllm and hf disagree on {len(bad)}/{len(rows)} parity checks for {base.spec} "
                        "(see harness doctor --parity); use --backend hf")
    log.info("parity hf vs vllm: %d/%d checks agree", len(rows), len(rows))


def make_pruner(cfg: SweepConfig):
    """The pruner that decides multi-fidelity promotions; steps are n_samples."""
    if not cfg.multi_fidelity.enabled:
        return optuna.pruners.NopPruner()
    mf = cfg.multi_fidelity
    name = "successive_halving" if cfg.pruner.name == "none" else cfg.pruner.name
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=mf.min_samples, max_resource=cfg.max_samples(), reduction_factor=mf.reduction_factor)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=mf.reduction_factor, n_min_trials=mf.reduction_factor)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=mf.min_samples, reduction_factor=mf.reduction_factor, min_early_stopping_rate=0)


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


def ensure_base_trial(study, engine, base, suites, root: Path, objective_fn, trackers, progress) -> None:
    import fcntl

    from harness.backends import make_candidate

    if any(t.user_attrs.get(BASE_ATTR) == "base" for t in study.get_trials(deepcopy=False)):
        return
    with open(root / ".base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # local workers: one scores the base, the others wait
        if any(t.user_attrs.get(BASE_ATTR) == "base" for t in study.get_trials(deepcopy=False)):
            return
        progress.say("trial 0: scoring the base model (the reference)")
        values, summary, seconds = _score(engine, base, make_candidate("base", base), suites, root / "base", objective_fn, progress)
        attrs = {BASE_ATTR: "base", "dir": str(root / "base"), "score_s": seconds, "scores": summary.to_dict(orient="records")}
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, values=values, user_attrs=attrs))
        trackers.log_trial("base", {}, summary, values, attrs)


def run(cfg: SweepConfig, n_trials: int | None = None, timeout_s: float | None = None, storage: str | None = None,
        backend_kind: str | None = None, tracker_names: list[str] | None = None, console=None) -> optuna.Study:
    from harness.backends import create, make_candidate
    from harness.models import resolve_base
    from harness.suites import load_suite
    from harness.trackers import make_trackers

    n_trials = n_trials or cfg.budget.n_trials
    timeout_s = timeout_s or cfg.budget.timeout_s
    backend_kind = backend_kind or cfg.backend
    root = study_dir(cfg)
    root.mkdir(parents=True, exist_ok=True)
    base = resolve_base(cfg.base)
    suites = {s.suite: load_suite(s.suite, s.limit or load_suite(s.suite).config.limit.sweep) for s in cfg.suites}
    directions, objective_fn = objectives(cfg, suites)
    study = _create_study(cfg, make_storage(cfg, storage), directions)
    if "objective" not in study.user_attrs:  # what a report needs to read this study on its own
        weights = {suite.name: next(s.weight for s in cfg.suites if s.suite == ref) for ref, suite in suites.items()}
        headline = {suite.name: next(s.metric for s in cfg.suites if s.suite == ref) or suite.headline for ref, suite in suites.items()}
        study.set_user_attr("objective", {"weights": weights, "headline": headline, "directions": directions,
                                          "objectives": [o.model_dump() for o in cfg.objectives]})
    if recovered := recover_stale(study, root):
        log.warning("%d trial(s) of a dead worker marked failed and queued again", recovered)
    if backend_kind == "vllm":
        _check_parity(base)
    rank = max(int(max(p.choices) if p.type == "categorical" else p.high) for n, p in cfg.space.items() if n == "lora_r")
    options = {"max_lora_rank": rank} if backend_kind == "vllm" else {}
    engine = create(backend_kind, base, [make_candidate("base", base)], **options)
    trackers = make_trackers(tracker_names or cfg.trackers, cfg, root)
    dists = distributions(cfg)
    grid = grid_space(cfg) if cfg.sampler.name == "grid" else None
    started = time.time()
    try:
        with SweepProgress(console, n_trials, len(_counted(study))) as progress:
            ensure_base_trial(study, engine, base, suites, root, objective_fn, trackers, progress)
            while len(_counted(study)) < n_trials and (timeout_s is None or time.time() - started < timeout_s):
                if grid and grid_done(study, grid):
                    progress.say(f"the grid is done: all {math.prod(map(len, grid.values()))} configurations tried")
                    break
                trial = study.ask(dists)
                mine = [t for t in _counted(study) if t.number <= trial.number]
                if len(mine) > n_trials:  # another worker took the last slot between our count and ask
                    trial.set_user_attr("surplus", True)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    break
                _run_trial(study, trial, cfg, base, engine, suites, root, objective_fn, trackers, progress, n_trials)
    finally:
        engine.close()
        trackers.finish(study)
    return study


def _run_trial(study, trial, cfg, base, engine, suites, root, objective_fn, trackers, progress, n_trials):
    """Train, score and tell one trial; a failure is recorded with its reason, never raised (but Ctrl-C and bad input)."""
    say = progress.say
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    params = dict(trial.params)
    tdir = root / f"trial-{trial.number}"
    beat = Heartbeat(tdir / "heartbeat")
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    rungs = cfg.rungs() if cfg.multi_fidelity.enabled else [params["n_samples"]]
    climbed = []
    try:
        for i, n_samples in enumerate(rungs):
            where = tdir / f"n{n_samples}" if cfg.multi_fidelity.enabled else tdir
            step = f" rung {i + 1}/{len(rungs)} n_samples={n_samples}" if cfg.multi_fidelity.enabled else ""
            say(f"trial {trial.number} ({len(_counted(study))}/{n_trials}){step}: training ({shown})")
            values, summary, attrs = _train_and_score(trial, cfg, base, engine, suites, {**params, "n_samples": n_samples},
                                                      where, objective_fn, progress)
            curve = attrs.pop("loss_curve")
            climbed.append({"n_samples": n_samples, "objective": values[0], "train_s": attrs["train_s"],
                            "tokens_seen": attrs["tokens_seen"], "dir": str(where)})
            # The trial's training cost is every rung it climbed.
            attrs.update(n_samples=n_samples, train_s=sum(r["train_s"] for r in climbed),
                         tokens_seen=sum(r["tokens_seen"] for r in climbed))
            if cfg.multi_fidelity.enabled:
                attrs["rungs"] = climbed
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            if i < len(rungs) - 1:
                trial.report(values[0], step=n_samples)
                if trial.should_prune():
                    reason = f"pruned at n_samples={n_samples}: objective {values[0]:.4f} not promoted by {type(study.pruner).__name__}"
                    trial.set_user_attr("fail_reason", reason)
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    trackers.log_failure(f"trial-{trial.number}", {**params, "n_samples": n_samples}, reason)
                    say(f"trial {trial.number}: {reason}")
                    _show_best(study, progress)
                    return
        t0 = time.perf_counter()
        trackers.log_trial(f"trial-{trial.number}", {**params, "n_samples": rungs[-1]}, summary, values, {**attrs, "loss_curve": curve})
        trial.set_user_attr("stages", {**attrs["stages"], "tracking": round(time.perf_counter() - t0, 3)})
        study.tell(trial, values)
        say(f"trial {trial.number}: objective {', '.join(f'{v:.4f}' for v in values)}")
        _show_best(study, progress)
    except KeyboardInterrupt:
        trial.set_user_attr("fail_reason", "interrupted (Ctrl-C)")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    except UserError:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    except Exception as err:  # noqa: BLE001 - one failed trial (NaN loss, engine error) does not stop the sweep
        from harness.train import TrainingFailed

        reason = err.reason if isinstance(err, TrainingFailed) else f"{type(err).__name__}: {err}"
        log.error("trial %d failed: %s", trial.number, reason)
        trial.set_user_attr("fail_reason", reason[:500])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        trackers.log_failure(f"trial-{trial.number}", params, reason)
    finally:
        beat.stop()


def _show_best(study: optuna.Study, progress: SweepProgress) -> None:
    """Update the live line: trials finished, and the best so far (single objective) with its params."""
    finished = len([t for t in _counted(study) if t.state != optuna.trial.TrialState.RUNNING])
    if len(study.directions) > 1:
        progress.trial_done(finished, None, None, None)
        return
    from harness.report import params_of

    best = max(study.best_trials, key=lambda t: t.values[0])
    progress.trial_done(finished, best.number, best.values[0], params_of(best))


def _train_and_score(trial, cfg, base, engine, suites, params: dict, where: Path, objective_fn, progress):
    """One adapter on `params`, scored on every suite into `where`; returns values, summary, trial attrs."""
    from harness.backends import make_candidate
    from harness.train import train

    tcfg = TrainConfig(**{**cfg.train.model_dump(), **params, "seed": cfg.seed + trial.number})
    adapter = where / "adapter"
    if adapter.exists():  # a complete adapter from an attempt that died while scoring
        shutil.rmtree(adapter)
    record = train(base, tcfg, adapter)
    progress.say(f"trial {trial.number}: scoring {', '.join(s.name for s in suites.values())}")
    cand = make_candidate(f"trial-{trial.number}", base, adapter)
    t0 = time.perf_counter()
    engine.add_candidates([cand])  # hf: loads the adapter now; vllm: on its first request (inside scoring)
    adapter_s = round(time.perf_counter() - t0, 3)
    values, summary, seconds = _score(engine, base, cand, suites, where, objective_fn, progress)
    suite_s = json.loads((where / "scores.json").read_text()).get("seconds", {})
    # W2 (bench/trial_anatomy.py): where a trial's time goes.
    stages = {"model load": record["load_s"], "training": record["train_s"], "held-out loss": record["heldout_eval_s"],
              "adapter load": adapter_s, **{f"scoring {name}": s for name, s in suite_s.items()},
              "scoring overhead (items, CIs)": round(max(seconds - sum(suite_s.values()), 0.0), 3)}
    attrs = {"dir": str(where), "adapter": str(adapter), "train_s": record["train_s"], "tokens_seen": record["tokens_seen"],
             "score_s": seconds, "scores": summary.to_dict(orient="records"), "loss_curve": record["loss_curve"], "stages": stages}
    return values, summary, attrs
