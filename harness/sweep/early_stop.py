"""Item-level early stopping of a trial's scoring (`scoring: {early_stop: sequential}` in a sweep file).

A sweep scores every trial's items in one fixed order: each suite's items in a fixed pseudo-random
order (a hash of suite and item id: a prefix is a fair sample, whatever order the file lists its
items in), the suites interleaved so that every prefix holds each suite in proportion to its size.
Each item's share of the objective is reported to its trial as an Optuna intermediate value (the
item's place in that order is the step), so any trial can be compared with the best completed trial
on the very items both have. Every fully scored trial (the base and merges included) reports all its
items, so the best trial always has them.

A trial being trained is scored in parts, tested after `chunk`, 2·`chunk`, 4·`chunk`, … items. The
test is on the objective itself: each suite's paired mean difference from the best trial
(stats/intervals.py: means, not medians), weighted as the objective weighs the suites; a suite not
scored yet (lm-eval's own tasks are scored whole, at the end) counts at its worst, as if the trial
lost its whole range there. The trial stops once the one-sided upper bound of (trial - best) is below
0 at that look's share of alpha, spent across the planned looks by a Pocock-type function
alpha * ln(1 + (e - 1) * t) of the share t of items seen, so the chance of ever stopping a trial as
good as the best stays under alpha over all looks. Its items so far are kept, and the trial is
PRUNED with the reason: it can never be picked.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib

import pandas as pd

from harness.score.suites import Suite
from harness.stats.combined import Weighted
from harness.stats.intervals import difference_estimate
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


def spent(alpha: float, share: float) -> float:
    """The error spent by the time `share` of the items is seen (Pocock-type: Lan & DeMets 1983)."""
    return alpha * math.log(1 + (math.e - 1) * min(max(share, 0.0), 1.0))


class ItemOrder:
    """The sweep's fixed scoring order, its parts, each item's share of the objective, and the test."""

    def __init__(self, suites: list[Suite], weights: dict[str, float], headline: dict[str, str], chunk: int, min_items: int = 0):
        self.chunk, self.min_items, self.headline = chunk, min_items, headline
        self.weights = {s.name: weights.get(s.name, 0.0) for s in suites}
        total = sum(len(s.rows) for s in suites)
        self.scale = {s.name: self.weights[s.name] * total / len(s.rows) for s in suites}
        divisible = [s for s in suites if s.kind.divisible]
        self.whole = [s for s in suites if not s.kind.divisible]  # scored whole, after the others
        shuffled = {s.name: sorted(s.rows, key=lambda r, n=s.name: zlib.crc32(f"{n}\0{r['id']}".encode())) for s in divisible}
        self.sequence: list[tuple[Suite, dict]] = []
        done = {s.name: 0 for s in divisible}
        for _ in range(sum(len(r) for r in shuffled.values())):
            # The suite furthest behind its share goes next: every prefix is stratified by suite.
            suite = min((s for s in divisible if done[s.name] < len(s.rows)), key=lambda s: (done[s.name] + 1) / len(s.rows))
            self.sequence.append((suite, shuffled[suite.name][done[suite.name]]))
            done[suite.name] += 1
        self.sequence += [(s, row) for s in self.whole for row in s.rows]
        self.step = {(s.name, str(row["id"])): i for i, (s, row) in enumerate(self.sequence)}
        self.suite_of = [s.name for s, _ in self.sequence]

    def __len__(self) -> int:
        return len(self.sequence)

    def looks(self) -> list[int]:
        """Item counts after which a trial is tested: chunk, 2x, 4x, ... below the divisible items.

        Each part is one scoring call, and a call pays a fixed cost (a generation batch runs as long
        as its longest answer): W6 measured ~3 s a call against 0.4 s an item with vllm. So the tests
        come early, where most stops happen, and a trial that keeps passing them is scored in parts
        that double: log2(items / chunk) calls, not items / chunk."""
        divisible = len(self) - sum(len(s.rows) for s in self.whole)
        out, at = [], self.chunk
        while at < divisible:
            if at >= self.min_items:
                out.append(at)
            at *= 2
        return out

    def chunks(self) -> list[list[Suite]]:
        """The sequence cut at the looks, each part as one piece per suite; the whole suites join the
        last part (no test follows it)."""
        bounds = [0, *self.looks(), len(self) - sum(len(s.rows) for s in self.whole)]
        parts = []
        for start, end in zip(bounds, bounds[1:], strict=False):
            pieces: dict[str, tuple[Suite, list[dict]]] = {}
            for suite, row in self.sequence[start:end]:
                pieces.setdefault(suite.name, (suite, []))[1].append(row)
            parts.append([s if len(rows) == len(s.rows) else dataclasses.replace(s, rows=rows) for s, rows in pieces.values()])
        parts[-1] += self.whole
        return [p for p in parts if p]

    def values(self, items: pd.DataFrame) -> dict[int, float]:
        """step -> the item's share of the objective, for the items of `items` (one candidate's)."""
        out = {}
        for row in items.itertuples():
            metric = json.loads(row.metrics).get(self.headline[row.suite], row.score)
            out[self.step[(row.suite, row.item_id)]] = self.scale[row.suite] * float(metric)
        return out

    def worse_than_best(self, trial: dict[int, float], best: dict[int, float], alpha: float) -> bool:
        """Is the trial shown worse than the best on the objective, at this look's share of alpha?
        `trial`, `best`: step -> the item's share of the objective (what each trial reported)."""
        shared = sorted(trial.keys() & best.keys())
        if not shared:
            return False
        share = len(shared) / len(self)
        level = spent(alpha, share) - spent(alpha, max(s for s in [0, *self.looks()] if s < len(shared)) / len(self))
        frame = pd.DataFrame({"suite": [self.suite_of[s] for s in shared], "trial": [trial[s] for s in shared],
                              "best": [best[s] for s in shared]})
        parts, unseen = [], 0.0
        for name, weight in self.weights.items():
            if not weight:
                continue
            rows = frame[frame.suite == name]
            if rows.empty:
                unseen += weight  # at its worst: the trial could gain the suite's whole range there
                continue
            scale = self.scale[name]
            parts.append((difference_estimate(rows.trial / scale, rows.best / scale), weight))
        upper = Weighted(parts).upper(level) if parts else math.inf
        return upper + unseen < 0
