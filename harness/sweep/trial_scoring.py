"""Scoring one candidate of a sweep: every suite on the sweep's one engine, recorded once into the
trial's scratch folder, the objective computed from the recorded means.

With early stopping (early_stop.py) every item's share of the objective is reported to the trial,
and a `stoppable` trial is scored part by part: `ScoringStopped` once the sequential test shows it
worse than the best completed trial on the objective over the same items (what was scored is recorded).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.score.backends import Backend, Candidate
from harness.score.evaluate import evaluate, new_run
from harness.score.suites import Suite
from harness.store import results
from harness.store.results import summary_frame
from harness.store.study import StudyHandle, candidate_name
from harness.sweep.early_stop import ItemOrder, ScoringStopped


@dataclass
class Scored:
    values: list[float]  # the objective(s)
    summary: pd.DataFrame  # one row per (candidate, suite, metric): mean and CI
    seconds: float  # the whole scoring, recording included
    suite_seconds: dict[str, float]  # scoring wall time per suite


class TrialScorer:
    def __init__(self, handle: StudyHandle, engine: Backend, suites: list[Suite], objective_fn: Callable[[dict], list[float]],
                 order: ItemOrder | None, alpha: float, live=None):
        self.handle, self.engine, self.suites, self.objective_fn = handle, engine, suites, objective_fn
        self.order, self.alpha, self.live = order, alpha, live

    def score(self, cand: Candidate, out_dir: Path, trial_id: int, stoppable: bool = False) -> Scored:
        t0 = time.perf_counter()
        parts = self.order.chunks() if self.order is not None and stoppable else [self.suites]
        run = new_run([cand], self.suites, self.engine)
        reported: dict[int, float] = {}
        try:
            for i, suites in enumerate(parts):
                part = evaluate([cand], suites, self.engine, live=self.live)
                if part.failures:
                    raise RuntimeError("; ".join(f"suite {f.suite} failed: {f.reason}" for f in part.failures))
                run.extend(part)
                if self.order is None:
                    continue
                values = self.order.values(part.items)
                for step, value in values.items():
                    self.handle.report(trial_id, step, value)
                reported.update(values)
                if stoppable and i < len(parts) - 1 and (best := self._best()) is not None \
                        and self.order.worse_than_best(reported, best.intermediate_values, self.alpha):
                    raise ScoringStopped(f"scoring stopped after {len(run.items)} of {len(self.order)} items: shown worse than "
                                         f"{candidate_name(best)} on the objective over them (sequential test, alpha {self.alpha} "
                                         "spent across looks)", round(time.perf_counter() - t0, 3))
        finally:
            doc = results.record(out_dir, run)  # once, also for a trial stopped early: its items so far are kept
        summary = summary_frame(doc)
        means = {(r.suite, r.metric): r.value for r in summary.itertuples()}
        return Scored(self.objective_fn(means), summary, time.perf_counter() - t0, dict(run.seconds))

    def _best(self):
        """The best completed trial so far, or None before the first completes."""
        try:
            return self.handle.study.best_trial
        except ValueError:
            return None
