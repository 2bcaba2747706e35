"""The leaderboard: one row per candidate, base first, then by objective; each suite's headline
metric with its 95% interval and its paired difference from the base, marked ▲ (shown better), ▼
(shown worse) or ≈ (cannot tell) by where the difference's (1 - alpha) interval lies (stats/intervals.py)."""

from __future__ import annotations

import math

import pandas as pd

from harness.stats.intervals import difference_estimate, mean_ci
from harness.store.reading import StudyData

MARKS_LEGEND = ("Δ vs base: ▲ shown better, ▼ shown worse, ≈ cannot tell (the paired difference's {level:.0%} interval lies "
                "above 0, below 0, or across it)")


def delta_mark(low: float, high: float) -> str:
    if low > 0:
        return "▲"
    return "▼" if high < 0 else "≈"  # NaN (nothing paired) compares False: cannot tell


def leaderboard(data: StudyData, alpha: float = 0.05) -> pd.DataFrame:
    """One row per candidate, base first; suite headlines with CIs, Δ vs base with its mark."""
    values = data.headline_values()
    suites = sorted({s for _, s in values})
    board = data.trials.drop(columns=["_params", "chosen_because"], errors="ignore")  # why a size: in the learning curve
    for suite in suites:
        stats = [mean_ci(values[(c, suite)]) if (c, suite) in values else None for c in board.candidate]
        board[suite] = [s["value"] if s else math.nan for s in stats]
        board[f"{suite} ci_low"] = [s["ci_low"] if s else math.nan for s in stats]
        board[f"{suite} ci_high"] = [s["ci_high"] if s else math.nan for s in stats]
        deltas = []
        for c in board.candidate:
            if c == "base" or (c, suite) not in values or ("base", suite) not in values:
                deltas.append("")
                continue
            d = difference_estimate(values[(c, suite)], values[("base", suite)])
            deltas.append(f"{d.value:+.3f} {delta_mark(*d.interval(alpha))}")
        board[f"Δ{suite} vs base"] = deltas
    if "replicate_of" in board:
        # A configuration re-trained with other seeds: how many runs, and how far its objective moves between them.
        config = [int(r) if r == r and r is not None else n for n, r in zip(board.number, board.replicate_of, strict=True)]
        spread = board.assign(_config=config).groupby("_config").objective
        board["seeds"] = spread.transform("size").to_numpy()
        board["seed sd"] = spread.transform("std").to_numpy()
        board = board.drop(columns="replicate_of")
    direction = (data.meta.get("directions") or ["maximize"])[0]
    rest = board[~board.is_base].sort_values("objective", ascending=direction == "minimize")
    return pd.concat([board[board.is_base], rest], ignore_index=True)
