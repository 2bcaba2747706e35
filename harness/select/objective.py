"""What the pick compares: the study's objective as per-item contributions, and the split of each
suite's items into selection and confirmation items.

The utility is the objective the study optimizes: the weighted sum of each suite's headline mean
(a single-objective sweep, an --items file), or, for a multi-objective study, its first objective
(one suite's metric, its direction); the report shows the Pareto front beside it. Minimized
objectives are negated, so larger is always better here.

The winner's curse: the best of many noisy candidates scored on the same items looks better than it
is. Where every suite of the utility has `SPLIT_MIN_ITEMS` items or more, a fixed tenth of each
suite's items (by a hash of suite and item id, the same for every candidate) is held out: the pick
is made on the others and its score reported on these, so the number a user ships against is
unbiased. With fewer items the pick's score is the selection score, and the report says it is
optimistic.

Training-seed noise: where the sweep re-trained configurations with other seeds (`replicates:`), a
configuration is one candidate, named after its first trial, whose per-item values are the mean over
its seeds; every interval it enters gets a seed term (the spread of its seeds' utilities, t-based,
MOVER-combined with the items' part). A configuration trained once gets the pooled seed spread of the
replicated ones; where nothing was replicated the intervals are conditional on one run per
configuration, and docs/decisions.md says so.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import pandas as pd

from harness.stats.combined import SeedNoise, Weighted
from harness.stats.intervals import Estimate, difference_estimate, mean_estimate
from harness.store.reading import StudyData

SPLIT_MIN_ITEMS = 400
CONFIRM_SHARE = 10  # one item in ten confirms


def is_confirmation(suite: str, item_id: str) -> bool:
    return zlib.crc32(f"{suite}\0{item_id}".encode()) % CONFIRM_SHARE == 0


@dataclass
class Utility:
    parts: list[tuple[str, str, float]]  # (suite, metric, weight): larger is better
    text: str

    @classmethod
    def of(cls, meta: dict) -> Utility:
        objectives = meta.get("objectives") or []
        if objectives:  # the sweep's own objectives (one may be minimized), not the suites' weighted headlines
            first = objectives[0]
            sign = -1.0 if first.get("direction") == "minimize" else 1.0
            metric = first.get("metric") or meta.get("headline", {}).get(first["suite"]) or "score"
            which = "the first objective" if len(objectives) > 1 else "the objective"
            return cls([(first["suite"], metric, sign)], f"{which}, {first['suite']}.{metric} ({first.get('direction', 'maximize')}d)")
        weights, headline = meta.get("weights", {}), meta.get("headline", {})
        parts = [(s, headline.get(s) or "score", float(w)) for s, w in weights.items() if w]
        text = " + ".join(f"{w:g} x {s}.{m}" for s, m, w in parts)
        return cls(parts, f"the study's objective, {text}")


class Comparisons:
    """Every candidate's per-item utility values, on the selection or the confirmation items."""

    def __init__(self, data: StudyData, utility: Utility, split: bool = True):
        self.utility = utility
        self.values: dict[str, dict[str, pd.Series]] = {}  # candidate -> suite -> values by item id
        metrics = data.metrics
        for suite, metric, _ in utility.parts:
            rows = metrics[(metrics.suite == suite) & (metrics.metric == metric)]
            for cand, group in rows.groupby("candidate", sort=False):
                self.values.setdefault(cand, {})[suite] = group.set_index("item_id")["value"].astype(float)
        self._fold_replicates(data)
        ids = {suite: set().union(*(v[suite].index for v in self.values.values() if suite in v)) for suite, _, _ in utility.parts}
        self.sizes = {suite: len(i) for suite, i in ids.items()}
        self.split = split and bool(ids) and min(self.sizes.values()) >= SPLIT_MIN_ITEMS
        self.confirming_ids = {suite: {i for i in i_s if is_confirmation(suite, str(i))} for suite, i_s in ids.items()} if self.split else {}

    def _fold_replicates(self, data: StudyData) -> None:
        """A re-trained configuration becomes one candidate: its seeds' per-item mean, and their spread."""
        self.seeds: dict[str, int] = {}
        self.seed_sd: dict[str, float] = {}
        self.pooled: tuple[float, int] | None = None  # (sd, degrees of freedom) over the replicated configurations
        if "replicate_of" not in data.trials:
            return
        number_of = dict(zip(data.trials.number, data.trials.candidate, strict=True))
        groups: dict[str, list[str]] = {}
        for row in data.trials.itertuples():
            origin = number_of.get(int(row.replicate_of)) if pd.notna(row.replicate_of) else None
            groups.setdefault(origin or row.candidate, []).append(row.candidate)
        spreads = []
        for first, members in groups.items():
            members = [m for m in members if m in self.values and all(s in self.values[m] for s, _, _ in self.utility.parts)]
            if len(members) < 2:
                continue
            utilities = [sum(w * self.values[m][s].mean() for s, _, w in self.utility.parts) for m in members]
            for suite, _, _ in self.utility.parts:
                self.values[first][suite] = pd.concat([self.values[m][suite] for m in members], axis=1, join="inner").mean(axis=1)
            for m in members:
                if m != first:
                    del self.values[m]
            self.seeds[first] = len(members)
            self.seed_sd[first] = float(pd.Series(utilities).std(ddof=1))
            spreads.append((self.seed_sd[first] ** 2, len(members) - 1))
        # A configuration trained once moves with its seed as much as the replicated ones did (pooled).
        self.pooled = (math.sqrt(sum(v * d for v, d in spreads) / sum(d for _, d in spreads)), sum(d for _, d in spreads)) if spreads else None

    def seed_term(self, cand: str) -> tuple[Estimate, float] | None:
        """The candidate's training-seed part of an interval (None for the base, or with no replicates)."""
        if cand == "base" or self.pooled is None:
            return None
        if cand in self.seeds:
            return SeedNoise(self.seed_sd[cand], self.seeds[cand], self.seeds[cand] - 1), 1.0
        return SeedNoise(self.pooled[0], 1, self.pooled[1]), 1.0

    def items_of(self, cand: str, suite: str, confirming: bool | None) -> pd.Series | None:
        """The candidate's values on the selection (False), confirmation (True) or all (None) items."""
        v = self.values.get(cand, {}).get(suite)
        if v is None or confirming is None or not self.split:
            return v
        held = v.index.isin(self.confirming_ids[suite])
        return v[held] if confirming else v[~held]

    def complete(self, cand: str) -> bool:
        """Has the candidate items of every suite of the utility?"""
        return all(s in self.values.get(cand, {}) for s, _, _ in self.utility.parts)

    def objective(self, cand: str, confirming: bool | None = False) -> Estimate:
        """The candidate's utility: the weighted sum of its suites' means (MOVER interval)."""
        parts = []
        for suite, _, w in self.utility.parts:
            v = self.items_of(cand, suite, confirming)
            if v is None:
                return Weighted([])
            parts.append((mean_estimate(v.to_numpy()), w))
        return Weighted(parts + [t for t in [self.seed_term(cand)] if t])

    def difference(self, a: str, b: str, confirming: bool | None = False) -> Estimate:
        """utility(a) - utility(b), each suite paired on the items both have."""
        parts = []
        for suite, _, w in self.utility.parts:
            va, vb = self.items_of(a, suite, confirming), self.items_of(b, suite, confirming)
            if va is None or vb is None:
                return Weighted([])
            parts.append((difference_estimate(va, vb), w))
        return Weighted(parts + [t for t in (self.seed_term(a), self.seed_term(b)) if t])

    def n_items(self, confirming: bool | None) -> int:
        """How many items (all suites) the selection, confirmation or all items are."""
        if confirming is None or not self.split:
            return sum(self.sizes.values())
        held = sum(len(i) for i in self.confirming_ids.values())
        return held if confirming else sum(self.sizes.values()) - held
