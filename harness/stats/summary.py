"""The items' metrics as a long frame, and their per-(candidate, suite, metric) summaries.

Nothing here is stored: scores.json and reports recompute it from items.parquet.
"""

from __future__ import annotations

import pandas as pd

from harness.stats.intervals import mean_ci

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
