"""The Tracker contract, and the fan-out that makes a tracker's failure harmless.

A tracker mirrors a sweep into an experiment tracker; the study and the results store stay the
source of truth, so nothing a tracker does (or fails to do) changes a sweep's outcome.

Lifecycle, per worker: the constructor opens (or reopens) the study-level record; `log_trial` and
`log_failure` are called once per finished trial, from the worker's thread, in the order trials end
(the base model's trial 0 included, named "base"); `finish` is called once when the worker stops,
normally or not, and closes the study-level record. Several workers may track the same study at
once, each with its own Tracker object: implementations must tolerate a study record another worker
created, finished or is still using.

Failure semantics: implementations raise freely. `Trackers` catches every exception, logs it as a
warning and drops that tracker for the rest of the worker's run; a tracker that cannot be
constructed is skipped with a warning. Callers never ask which trackers they hold.

What is logged: params, per-suite metrics with their CIs, the objective, the training loss curve,
timings, and (where supported) the adapter. Secrets never: no environment, no tokens, no URLs with
credentials.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod

import optuna
import pandas as pd

log = logging.getLogger(__name__)


class Tracker(ABC):
    name: str = "?"

    @abstractmethod
    def log_trial(self, name: str, params: dict, summary: pd.DataFrame, values: list[float], attrs: dict) -> None:
        """A finished candidate: `name` ("base" or "trial-<n>"), its params, the per-suite summary
        (candidate, suite, metric, value, ci_low, ci_high, n), objective values, and trial attributes
        (`loss_curve` [[step, loss]], `train_s`, `tokens_seen`, `score_s`), and `adapter`, the local adapter folder."""

    @abstractmethod
    def log_failure(self, name: str, params: dict, reason: str) -> None:
        """A failed or pruned trial and its reason."""

    @abstractmethod
    def finish(self, study: optuna.Study) -> None:
        """The worker stops: close the study-level record (called exactly once per tracker)."""


def metrics_of(summary: pd.DataFrame, values: list[float]) -> dict[str, float]:
    """Flat metric names: objective[i], SUITE.METRIC and its .ci_low/.ci_high; non-finite values left out."""
    out = {f"objective{i or ''}": float(v) for i, v in enumerate(values)}
    for r in summary.itertuples():
        for key, value in ((f"{r.suite}.{r.metric}", r.value), (f"{r.suite}.{r.metric}.ci_low", r.ci_low),
                           (f"{r.suite}.{r.metric}.ci_high", r.ci_high)):
            if value is not None and math.isfinite(value):
                out[key] = float(value)
    return out


class Trackers:
    """Fans out to every tracker; a failing tracker is logged and dropped, never fatal."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers

    def _each(self, method: str, *args) -> None:
        for t in list(self.trackers):
            try:
                getattr(t, method)(*args)
            except Exception as err:  # noqa: BLE001 - tracking must never stop a sweep
                log.warning("tracker %s failed in %s (disabled for this run): %s", t.name, method, err)
                self.trackers.remove(t)

    def log_trial(self, name: str, params: dict, summary: pd.DataFrame, values: list[float], attrs: dict) -> None:
        self._each("log_trial", name, params, summary, values, attrs)

    def log_failure(self, name: str, params: dict, reason: str) -> None:
        self._each("log_failure", name, params, reason)

    def finish(self, study: optuna.Study) -> None:
        self._each("finish", study)
