"""The data of one learning curve: at each training size, one or more training runs scored on the
same items, and what the noise in those points is made of (which items were drawn; which run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.errors import UserError


@dataclass
class Curve:
    ns: np.ndarray  # distinct sample counts, ascending
    items: np.ndarray  # (sizes, items): each item's score averaged over the runs at that size
    run_means: list[np.ndarray]  # per size: each run's mean over the items
    item_ids: list[str]
    source: str = "items"  # names the input in error messages

    @classmethod
    def from_items(cls, frame: pd.DataFrame, source: str = "items") -> Curve:
        """`frame`: columns n_samples, item_id, score, and optionally run (a seed or trial) per size."""
        if frame.empty:
            raise UserError(f"{source}: no items to fit")
        frame = frame.assign(run=frame["run"].astype(str) if "run" in frame else "0")
        bad = frame[(frame.score < 0) | (frame.score > 1) | frame.score.isna()]
        if len(bad):
            row = bad.iloc[0]
            raise UserError(f"{source}: score {float(row.score):g} of item {row.item_id!r} at n_samples {row.n_samples:g} is outside [0, 1] "
                            f"({len(bad)} such row(s)); a learning curve is of scores in [0, 1]")
        dup = frame[frame.duplicated(["n_samples", "run", "item_id"], keep=False)]
        if len(dup):
            row = dup.iloc[0]
            raise UserError(f"{source}: item_id {row.item_id!r} appears {int((dup.item_id == row.item_id).sum())} times at n_samples "
                            f"{row.n_samples:g}{'' if row.run == '0' else f' in run {row.run}'} ({dup.item_id.nunique()} duplicated id(s)); "
                            "one score per item and run (add a run column for repeated training runs)")
        shared = set.intersection(*(set(g.item_id) for _, g in frame.groupby("n_samples")))
        if len(shared) < 2:
            raise UserError(f"{source}: {len(shared) or 'no'} item{'' if len(shared) == 1 else 's'} scored at every n_samples; a learning "
                            "curve needs the same items at each size, at least 2 of them")
        ids = sorted(shared)
        frame = frame[frame.item_id.isin(shared)]
        ns, items, run_means = [], [], []
        for n, group in frame.groupby("n_samples"):
            wide = group.pivot_table(index="run", columns="item_id", values="score", aggfunc="mean").reindex(columns=ids)
            if wide.isna().any().any():  # a run that missed some shared items: score what every run has
                wide = wide.dropna(axis=1)
            ns.append(float(n))
            items.append(group.groupby("item_id").score.mean().reindex(ids).to_numpy(dtype=float))
            run_means.append(wide.mean(axis=1).to_numpy(dtype=float))
        return cls(np.array(ns), np.stack(items), run_means, ids, source)

    def first(self, sizes: int) -> Curve:
        """The curve of its `sizes` smallest sizes only."""
        return Curve(self.ns[:sizes], self.items[:sizes], self.run_means[:sizes], self.item_ids, self.source)

    @property
    def t(self) -> np.ndarray:
        return np.log(self.ns)

    @property
    def means(self) -> np.ndarray:
        return self.items.mean(axis=1)

    @property
    def runs(self) -> np.ndarray:
        return np.array([len(r) for r in self.run_means])

    def item_variance(self) -> np.ndarray:
        """Per size: the variance of the mean from which items were drawn, floored at that of one item
        in n (a mean of 0 or 1 over n items is not known exactly)."""
        n = self.items.shape[1]
        floor = (0.5 / n) * (1 - 0.5 / n) / n
        return np.maximum(self.items.var(axis=1, ddof=1) / n, floor)

    def seed_variance(self) -> tuple[float, int] | None:
        """The variance of one run's mean about its size's expected score, pooled over the sizes with
        several runs, and its degrees of freedom; None without repeated runs."""
        dof = sum(len(r) - 1 for r in self.run_means)
        if dof == 0:
            return None
        return sum(float(((r - r.mean()) ** 2).sum()) for r in self.run_means) / dof, dof

    def resampled_means(self, n_boot: int, rng: np.random.Generator) -> np.ndarray:
        """(n_boot, sizes): the point means with the items resampled jointly across sizes (each item is
        scored at every size, so its difficulty is shared). Where the items barely vary (all 0 or all
        1), resampling cannot move the mean: the shortfall from `item_variance`'s floor is added as
        noise, so no interval claims an exact score."""
        n = self.items.shape[1]
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # n_boot x items
        missing = np.maximum(self.item_variance() - self.items.var(axis=1) / n, 0.0)
        return counts @ self.items.T / n + rng.normal(0.0, 1.0, (n_boot, len(self.ns))) * np.sqrt(missing)

    def paired_rise(self, k: int, j: int = 0, run_var: float = 0.0) -> tuple[float, float]:
        """Mean and standard error of (score at size k - score at size j) over the shared items, with the
        run-to-run noise `run_var` of one run's mean (each point averages its runs)."""
        diff = self.items[k] - self.items[j]
        se2 = diff.var(ddof=1) / len(diff) if len(diff) > 1 else 0.0
        return float(diff.mean()), math.sqrt(se2 + run_var * (1 / self.runs[k] + 1 / self.runs[j]))
