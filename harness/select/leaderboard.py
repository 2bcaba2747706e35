"""The leaderboard: one row per candidate, base first, then by objective; each suite's headline
metric with its 95% CI and its paired difference from the base, marked ▲ (significantly better),
▼ (significantly worse) or ≈ (not significant) by a paired sign-flip test at alpha."""

from __future__ import annotations

import math

import pandas as pd

from harness.stats import mean_ci, paired_difference
from harness.store.reading import StudyData

MARKS_LEGEND = "Δ vs base: ▲ significantly better, ▼ significantly worse, ≈ not significant (paired sign-flip test, alpha {alpha:g})"


def delta_mark(diff: float, p_value: float, alpha: float) -> str:
    if not p_value < alpha:  # NaN (no shared items) counts as not significant
        return "≈"
    return "▲" if diff > 0 else "▼"


def leaderboard(data: StudyData, alpha: float = 0.05) -> pd.DataFrame:
    """One row per candidate, base first; suite headlines with CIs, Δ vs base with significance."""
    values = data.headline_values()
    suites = sorted({s for _, s in values})
    board = data.trials.drop(columns="_params")
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
            d = paired_difference(values[(c, suite)], values[("base", suite)])
            deltas.append(f"{d['diff']:+.3f} {delta_mark(d['diff'], d['p_value'], alpha)}")
        board[f"Δ{suite} vs base"] = deltas
    direction = (data.meta.get("directions") or ["maximize"])[0]
    rest = board[~board.is_base].sort_values("objective", ascending=direction == "minimize")
    return pd.concat([board[board.is_base], rest], ignore_index=True)
