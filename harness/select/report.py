"""`harness report`: what a sweep found, from the study and its items alone, as files a person reads.

reports/<study>/: index.html (self-contained, plots inline), leaderboard.md, leaderboard.csv,
results.parquet (one row per candidate x suite x metric) and best.json (the pick, see pick.py).
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from harness.runtime.files import atomic_path, atomic_write, write_json
from harness.select.leaderboard import leaderboard
from harness.select.pick import pick
from harness.stats import summarize
from harness.store import BEST, StudyData

S = optuna.trial.TrialState


def tidy_results(data: StudyData) -> pd.DataFrame:
    """results.parquet: one row per candidate x suite x metric."""
    return summarize(data.items) if len(data.items) else pd.DataFrame()


# ---------------------------------------------------------------- files and plots


def figures(data: StudyData, board: pd.DataFrame) -> list[tuple[str, object]]:
    import plotly.graph_objects as go

    figs = []
    weights = data.meta.get("weights", {})
    suites = [c for c in sorted({s for s in data.items.suite.unique()})] if len(data.items) else []
    task = max(suites, key=lambda s: weights.get(s, 0)) if suites else None
    trials = board[~board.is_base]
    if task and {"n_samples", "lora_r"} <= set(trials.columns) and len(trials):
        fig = go.Figure()
        for rank, group in trials.groupby("lora_r"):
            best = group.sort_values(task, ascending=False).groupby("n_samples", as_index=False).first().sort_values("n_samples")
            lows, highs = best[f"{task} ci_low"], best[f"{task} ci_high"]
            fig.add_trace(go.Scatter(x=list(best.n_samples) + list(best.n_samples[::-1]), y=list(highs) + list(lows[::-1]),
                                     fill="toself", opacity=0.2, line={"width": 0}, showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=best.n_samples, y=best[task], mode="lines+markers", name=f"r={int(rank)}"))
        base_value = board[board.is_base][task].iloc[0] if board.is_base.any() else None
        if base_value is not None and not pd.isna(base_value):
            fig.add_hline(y=base_value, line_dash="dot", annotation_text="base")
        fig.update_layout(title=f"Learning curve: {task} vs training samples (best trial per point, 95% CI band)",
                          xaxis_title="n_samples", yaxis_title=task)
        figs.append(("learning-curve", fig))
    if task and "learning_rate" in trials and len(trials):
        fig = go.Figure(go.Scatter(x=trials.learning_rate, y=trials[task], mode="markers", text=trials.candidate,
                                   marker={"color": trials.get("lora_r"), "showscale": True, "colorbar": {"title": "rank"}}))
        fig.update_layout(title=f"{task} vs learning rate", xaxis_type="log", xaxis_title="learning_rate", yaxis_title=task)
        figs.append(("score-vs-lr", fig))
    fig = go.Figure()
    for suite in suites:
        vals = board[suite]
        fig.add_trace(go.Bar(name=suite, x=board.candidate, y=vals,
                             error_y={"type": "data", "symmetric": False, "array": board[f"{suite} ci_high"] - vals,
                                      "arrayminus": vals - board[f"{suite} ci_low"]}))
    fig.update_layout(title="Per-suite headline metric with 95% CI", barmode="group")
    figs.append(("suite-bars", fig))
    complete = [t for t in data.study.get_trials(deepcopy=False, states=(S.COMPLETE,)) if t.params]
    if len(complete) >= 2:
        tuned = optuna.create_study(directions=data.study.directions)
        tuned.add_trials(complete)
        try:
            figs.append(("importances", optuna.visualization.plot_param_importances(tuned)))
        except (RuntimeError, ValueError) as err:  # too few or constant trials
            figs.append(("importances", go.Figure().update_layout(title=f"Parameter importances: not computable ({err})")))
        if len(data.study.directions) > 1:
            figs.append(("pareto-front", optuna.visualization.plot_pareto_front(tuned)))
    figs.append(("timeline", optuna.visualization.plot_timeline(data.study)))
    return figs


def write(data: StudyData, out: Path, rule: str = "cheapest-tied", alpha: float = 0.05) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    board = leaderboard(data, alpha)
    best = pick(data, rule, alpha)
    shown = board.drop(columns=["number", "is_base", "start", "complete", "adapter", "dir"], errors="ignore")
    shown.insert(0, "", ["★ base" if b else ("✔ pick" if c == best["candidate"] else "") for b, c in zip(board.is_base, board.candidate)])
    atomic_write(out / "leaderboard.csv", shown.to_csv(index=False))
    atomic_write(out / "leaderboard.md", f"# {data.name}: leaderboard\n\n" + shown.to_markdown(index=False, floatfmt=".4g") + "\n")
    with atomic_path(out / "results.parquet") as tmp:
        tidy_results(data).to_parquet(tmp, index=False)
    write_json(out / BEST, best)
    parts = [f"<h1>{data.name}</h1>", f"<p><b>Pick: {best['candidate']}</b> (objective {best['objective']:.4f}). Rule: {best['rule']}. "
             f"Tied with the top: {', '.join(best['tied_with_top'])}. "
             + (f"Runner-up: {best['runner_up']['candidate']} (objective {best['runner_up']['objective']:.4f}).</p>" if best["runner_up"] else "</p>"),
             "<h2>Leaderboard</h2>", shown.to_html(index=False, table_id="leaderboard", float_format=lambda v: f"{v:.4g}")]
    if "rungs" in board:
        parts.append("<p>Multi-fidelity: <i>rungs</i> lists the n_samples each trial was trained on in turn; each arrow is "
                     "a promotion by the pruner, and pruned trials are listed below with the rung they stopped at.</p>")
    if len(data.failed):
        parts += ["<h2>Failed and pruned trials</h2>", data.failed.to_html(index=False, table_id="failed")]
    for i, (name, fig) in enumerate(figures(data, board)):
        parts.append(f'<div class="plot" id="plot-{name}">' + fig.to_html(full_html=False, include_plotlyjs=i == 0) + "</div>")
    html = ("<!doctype html><html><head><meta charset='utf-8'><title>harness report: " + data.name + "</title>"
            "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>" + "\n".join(parts) + "</body></html>")
    atomic_write(out / "index.html", html)
    return best
