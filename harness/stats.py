"""Uncertainty, derived from per-item rows: mean, stderr, bootstrap CIs, paired differences.

Nothing here is stored: scores.json and reports recompute it from items.parquet.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N_BOOT = 2000
N_PERM = 10000


def mean_ci(values, alpha: float = 0.05, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Mean, standard error and a percentile bootstrap CI."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0 or np.isnan(x).any():
        return {"value": float("nan"), "stderr": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": n}
    mean = float(x.mean())
    stderr = float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    boots = x[np.random.default_rng(seed).integers(0, n, (n_boot, n))].mean(axis=1)
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return {"value": mean, "stderr": stderr, "ci_low": float(low), "ci_high": float(high), "n": n}


def paired_difference(a: pd.Series, b: pd.Series, alpha: float = 0.05, seed: int = 0) -> dict:
    """a - b on the items both scored (aligned on the index): mean, bootstrap CI, sign-flip p-value."""
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    d = (joined["a"] - joined["b"]).to_numpy(dtype=float)
    n = len(d)
    if n == 0:
        return {"diff": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan"), "n": 0}
    ci = mean_ci(d, alpha=alpha, seed=seed)
    rng = np.random.default_rng(seed + 1)
    observed = abs(d.mean())
    flips = rng.choice((-1.0, 1.0), size=(N_PERM, n))
    extreme = (np.abs((flips * d).mean(axis=1)) >= observed - 1e-12).sum()
    return {"diff": float(d.mean()), "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "p_value": float((extreme + 1) / (N_PERM + 1)), "n": n}


ID_COLUMNS = ["candidate", "candidate_hash", "suite", "item_id"]


def metric_frame(items: pd.DataFrame) -> pd.DataFrame:
    """items.parquet rows -> one row per (candidate, suite, item, metric) with its value.

    Reshaped suite by suite: a metric another suite has is absent here, but a NaN value of this
    suite's own metric stays NaN (and makes its summary NaN) instead of vanishing.
    """
    frames = []
    for _, group in items.groupby("suite", sort=False):
        expanded = pd.DataFrame([_loads(m) for m in group["metrics"]], index=group.index)
        wide = pd.concat([group[ID_COLUMNS], expanded], axis=1)
        frames.append(wide.melt(id_vars=ID_COLUMNS, var_name="metric", value_name="value"))
    if not frames:
        return pd.DataFrame(columns=[*ID_COLUMNS, "metric", "value"])
    return pd.concat(frames, ignore_index=True)


def summarize(items: pd.DataFrame) -> pd.DataFrame:
    """One row per (candidate, suite, metric): value, stderr, 95% CI, n."""
    long = metric_frame(items)
    rows = []
    for (cand, suite, metric), group in long.groupby(["candidate", "suite", "metric"], sort=False):
        rows.append({"candidate": cand, "suite": suite, "metric": metric, **mean_ci(group["value"].to_numpy())})
    return pd.DataFrame(rows)


def _loads(text):
    import json

    return json.loads(text) if isinstance(text, str) else text
