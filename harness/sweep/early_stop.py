"""Item-level early stopping of a trial's scoring (`scoring: {early_stop: wilcoxon}` in a sweep file).

A sweep scores every trial's items in one fixed order: suite by suite as the sweep file lists them,
each suite's items in their order. Each item's share of the objective is reported to its trial as
an Optuna intermediate value, the item's place in that order being the step, so the study's
`WilcoxonPruner` compares a trial with the best completed trial on the very items both have
(paired, one-sided signed-rank test). Every fully scored trial (the base and merges included)
reports all its items, so the best trial always has them; a trial being trained is scored in
parts, tested after `chunk`, 2·`chunk`, 4·`chunk`, … items, and stops once the pruner says it is
significantly worse. Its items so far are kept, and the trial is PRUNED with the reason: it can
never be picked.

An item's value is w_s * N / n_s * its headline score (suite s, weight w_s, n_s items, N in all),
so the mean of a fully scored trial's values is its objective. lm-eval's own tasks (native suites)
report their items but are scored whole (their kind is not `divisible`): their documents are chosen
as a count of the first ones.
"""

from __future__ import annotations

import dataclasses
import json

import pandas as pd

from harness.score.suites import Suite
from harness.store.study import TrialAttr


class TrialStopped(Exception):
    """A trial the study's pruner stopped: `reason` for its record, the `params` it stopped at and the
    trial attributes it keeps."""

    def __init__(self, reason: str, params: dict | None = None, attrs: dict | None = None):
        super().__init__(reason)
        self.reason, self.params, self.attrs = reason, params or {}, attrs or {}


class ScoringStopped(TrialStopped):
    """The trial's scoring stopped early; `reason` says after how many items and against which trial."""

    def __init__(self, reason: str, seconds: float):
        super().__init__(reason, attrs={TrialAttr.SCORE_S: seconds})


class ItemOrder:
    """The sweep's fixed scoring order, its chunks, and each item's share of the objective."""

    def __init__(self, suites: list[Suite], weights: dict[str, float], headline: dict[str, str], chunk: int):
        self.suites, self.chunk = suites, chunk
        total = sum(len(s.rows) for s in suites)
        self.step: dict[tuple[str, str], int] = {}
        self.scale: dict[str, float] = {}
        for suite in suites:
            self.scale[suite.name] = weights.get(suite.name, 0.0) * total / len(suite.rows)
            for row in suite.rows:
                self.step[(suite.name, str(row["id"]))] = len(self.step)
        self.headline = headline

    def __len__(self) -> int:
        return len(self.step)

    def chunks(self) -> list[list[Suite]]:
        """The suites cut into consecutive parts, tested after `chunk`, 2x, 4x, ... items (native suites whole).

        Each part is one scoring call (pieces of one or more suites), and a call pays a fixed cost
        (a generation batch runs as long as its longest answer): W6 measured ~3 s a call against
        0.4 s an item with vllm. So the tests come early, where most stops happen, and a trial that
        keeps passing them is scored in parts that double: log2(items / chunk) calls, not items / chunk."""
        parts, part, done, test_at = [], [], 0, self.chunk
        for suite in self.suites:
            start = 0
            while start < len(suite.rows):
                end = len(suite.rows) if not suite.kind.divisible else min(len(suite.rows), start + test_at - done)
                part.append(suite if (start, end) == (0, len(suite.rows)) else dataclasses.replace(suite, rows=suite.rows[start:end]))
                done, start = done + end - start, end
                if done >= test_at:
                    parts.append(part)
                    part = []
                    while test_at <= done:
                        test_at *= 2
        return parts + ([part] if part else [])

    def values(self, items: pd.DataFrame) -> dict[int, float]:
        """step -> the item's share of the objective, for the items of `items` (one candidate's)."""
        out = {}
        for row in items.itertuples():
            metric = json.loads(row.metrics).get(self.headline[row.suite], row.score)
            out[self.step[(row.suite, row.item_id)]] = self.scale[row.suite] * float(metric)
        return out
