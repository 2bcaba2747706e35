"""Uncertainty, derived from per-item rows: mean, stderr, bootstrap CIs, paired differences.

Nothing here is stored: scores.json and reports recompute it from items.parquet.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

N_BOOT = 2000
N_PERM = 10000
CACHE_LIMIT = 32_000_000  # entries: resampling plans up to this size are kept (a report reuses them)


@lru_cache(maxsize=8)
def _bootstrap_plan(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Resampling indices (n_boot, n): the same for every call with this n and seed, so compute once."""
    return np.random.default_rng(seed).integers(0, n, (n_boot, n), dtype=np.int32 if n < 2**31 else np.int64)


@lru_cache(maxsize=8)
def _sign_flip_plan(n: int, seed: int) -> np.ndarray:
    """(N_PERM, n) float32 matrix of +-1 from random bits (unpackbits is ~10x faster than rng.choice)."""
    bits = np.unpackbits(np.frombuffer(np.random.default_rng(seed).bytes(N_PERM * ((n + 7) // 8)), dtype=np.uint8).reshape(N_PERM, -1), axis=1)
    return bits[:, :n].astype(np.float32) * 2 - 1


def _plan(factory, size: int, *key):
    # A plan too large to keep (tens of thousands of items) is built for the call and dropped.
    return factory(*key) if size <= CACHE_LIMIT else factory.__wrapped__(*key)


def mean_ci(values, alpha: float = 0.05, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Mean, standard error and a percentile bootstrap CI."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0 or np.isnan(x).any():
        return {"value": float("nan"), "stderr": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": n}
    mean = float(x.mean())
    stderr = float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    boots = x[_plan(_bootstrap_plan, n_boot * n, n, n_boot, seed)].mean(axis=1)
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
    # Compared as sums in float32: exact for the small-integer differences of 0/1 metrics; the
    # tolerance absorbs float32 rounding for continuous metrics, so an exact tie always counts.
    observed = abs(d.sum())
    flipped = np.abs(_plan(_sign_flip_plan, N_PERM * n, n, seed + 1) @ d.astype(np.float32))
    extreme = (flipped >= observed - 1e-5 * (np.abs(d).sum() + 1)).sum()
    return {"diff": float(d.mean()), "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "p_value": float((extreme + 1) / (N_PERM + 1)), "n": n}


def weighted_paired_difference(pairs: list[tuple[pd.Series, pd.Series, float]], alpha: float = 0.05, seed: int = 0) -> dict:
    """sum_s w_s * mean_s(a - b) over suites s, each paired on its own items: the difference of a
    weighted objective. CI: items bootstrapped within each suite; p: signs flipped per item (two-sided)."""
    observed, boots, flips = 0.0, 0.0, 0.0
    n_total = 0
    for s, (a, b, weight) in enumerate(pairs):
        joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
        d = (joined["a"] - joined["b"]).to_numpy(dtype=float)
        if not len(d) or not weight:
            continue
        n = len(d)
        n_total += n
        observed += weight * d.mean()
        boots = boots + weight * d[_plan(_bootstrap_plan, N_BOOT * n, n, N_BOOT, seed + 2 * s)].mean(axis=1)
        flips = flips + weight * (_plan(_sign_flip_plan, N_PERM * n, n, seed + 2 * s + 1) @ d.astype(np.float32)) / n
    if not n_total:
        return {"diff": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan"), "n": 0}
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    extreme = (np.abs(flips) >= abs(observed) - 1e-6 * (abs(observed) + 1e-12)).sum()
    return {"diff": float(observed), "ci_low": float(low), "ci_high": float(high), "p_value": float((extreme + 1) / (N_PERM + 1)), "n": n_total}


ID_COLUMNS = ["candidate", "candidate_hash", "suite", "item_id"]


def metric_frame(items: pd.DataFrame) -> pd.DataFrame:
    """items.parquet rows -> one row per (candidate, suite, item, metric) with its value.

    Reshaped suite by suite: a metric another suite has is absent here, but a NaN value of this
    suite's own metric stays NaN (and makes its summary NaN) instead of vanishing.
    """
    frames = []
    for _, group in items.groupby("suite", sort=False):
        expanded = pd.DataFrame(_loads_all(group["metrics"]), index=group.index)
        wide = pd.concat([group[ID_COLUMNS], expanded], axis=1)
        frames.append(wide.melt(id_vars=ID_COLUMNS, var_name="metric", value_name="value"))
    if not frames:
        return pd.DataFrame(columns=[*ID_COLUMNS, "metric", "value"])
    return pd.concat(frames, ignore_index=True)


def summarize(items: pd.DataFrame, long: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (candidate, suite, metric): value, stderr, 95% CI, n. `long`: the items'
    `metric_frame`, where the caller has it already."""
    long = metric_frame(items) if long is None else long
    rows = []
    for (cand, suite, metric), group in long.groupby(["candidate", "suite", "metric"], sort=False):
        rows.append({"candidate": cand, "suite": suite, "metric": metric, **mean_ci(group["value"].to_numpy())})
    return pd.DataFrame(rows)


def _loads_all(column: pd.Series) -> list[dict]:
    """The metrics column (JSON text per row) parsed in one json.loads: ~5x faster than row by row."""
    import json

    if all(isinstance(m, str) for m in column):
        return json.loads("[" + ",".join(column) + "]")
    return [json.loads(m) if isinstance(m, str) else m for m in column]
