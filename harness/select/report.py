"""`harness report`: what a sweep found, from the study and its items alone, as files a person reads.

reports/<study>/: index.html (self-contained, plots inline), leaderboard.md, leaderboard.csv,
results.parquet (one row per candidate x suite x metric), best.json (the pick, see pick.py) and
card.json (the report in one line, for the index of every study: study_index.py).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import optuna
import pandas as pd

from harness.config import PickOptions
from harness.errors import UserError
from harness.forecast import Curve, Forecast, forecast
from harness.forecast.inputs import curve_metric, known_metrics, study_items
from harness.runtime.files import atomic_path, atomic_write
from harness.select import study_index
from harness.select.leaderboard import MARKS_LEGEND, leaderboard
from harness.select.pick import options_for, pick
from harness.stats.summary import summarize
from harness.store import documents, paths
from harness.store.documents import BestDoc
from harness.store.reading import StudyData
from harness.store.study import ADAPTIVE_META

S = optuna.trial.TrialState


def tidy_results(data: StudyData) -> pd.DataFrame:
    """results.parquet: one row per candidate x suite x metric."""
    return summarize(data.items, data.metrics) if len(data.items) else pd.DataFrame()


# ---------------------------------------------------------------- files and plots


def learning_curve(data: StudyData, target: tuple[str, float] | None) -> tuple[str | None, Forecast | None, str]:
    """(metric, forecast or None, a sentence for the page). A forecast, or its honest abstention, needs
    trials at 2 or more n_samples."""
    metric = curve_metric(data, target)
    if target is not None and metric not in (known := known_metrics(data)):  # however few the sizes: a typo is heard
        raise UserError(f"--target {metric}={target[1]:g}: no such metric in study {data.name} (it has: {', '.join(known)})")
    if metric is None or "n_samples" not in data.trials:
        return metric, None, ""
    sizes = sorted(set(data.trials[~data.trials.is_base].n_samples.dropna()))
    if len(sizes) < 2:
        return metric, None, (f"Learning curve: the trials cover {len(sizes)} training size(s) ({', '.join(f'{n:g}' for n in sizes)}); "
                              "a forecast needs 4 or more.")
    try:
        frame, note = study_items(data, metric)
        result = forecast(Curve.from_items(frame, f"study {data.name}"), metric, target[1] if target else None, [int(4 * sizes[-1])])
    except UserError as err:
        if target is not None:  # asked for: the user must hear why not
            raise
        return metric, None, f"Learning curve: no forecast ({'; '.join(err.lines)})."
    return metric, result, f"Forecast ({note}): {result.sentence()}{_chosen_sizes(data)}"


def _chosen_sizes(data: StudyData) -> str:
    """Adaptive n_samples: the sizes the sweep chose, why, and why it stopped."""
    if "chosen_because" not in data.trials:
        return ""
    chosen = data.trials.dropna(subset=["chosen_because"]).sort_values("number")
    steps = "; ".join(f"{int(row.n_samples)} ({row.chosen_because})" for row in chosen.itertuples())
    stopped = data.study.user_attrs.get(ADAPTIVE_META)
    return f" The sweep chose its sizes: {steps}." + (f" Then it {stopped}." if stopped else "")


def figures(data: StudyData, board: pd.DataFrame, curve: tuple) -> list[tuple[str, object]]:
    import numpy as np
    import plotly.graph_objects as go

    figs = []
    weights = data.meta.get("weights", {})
    suites = [c for c in sorted({s for s in data.items.suite.unique()})] if len(data.items) else []
    task = max(suites, key=lambda s: weights.get(s, 0)) if suites else None
    trials = board[~board.is_base]
    metric, result, _ = curve
    if result is not None:
        fig = go.Figure()
        if not result.abstained:
            xs = np.geomspace(result.points[0]["n"], 4 * result.points[-1]["n"], 60)
            fitted, low, high = result.band(xs)
            fig.add_trace(go.Scatter(x=list(xs) + list(xs[::-1]), y=list(high) + list(low[::-1]), fill="toself", opacity=0.2,
                                     line={"width": 0}, name="a next run: 95% band", hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=xs, y=fitted, mode="lines", name=f"forecast (mostly {result.model})", line={"dash": "dash"}))
        fig.add_trace(go.Scatter(x=[p["n"] for p in result.points], y=[p["mean"] for p in result.points], mode="markers", name="trials",
                                 error_y={"type": "data", "symmetric": False, "array": [p["ci"][1] - p["mean"] for p in result.points],
                                          "arrayminus": [p["mean"] - p["ci"][0] for p in result.points]}))
        suite, _, name = metric.rpartition(".")
        base = data.headline_values().get(("base", suite)) if data.meta.get("headline", {}).get(suite) == name else None
        if base is not None and len(base):
            fig.add_hline(y=float(base.mean()), line_dash="dot", annotation_text="base model")
        if result.target is not None:
            fig.add_hline(y=result.target["value"], line_color="firebrick", annotation_text=f"target {result.target['value']:g}")
        title = (f"Learning curve: {metric} vs training samples (95% CIs); no forecast: {result.abstained}" if result.abstained else
                 f"Learning curve: {metric} vs training samples, a next run's score to 4x the data (95% band)")
        fig.update_layout(title={"text": title, "font": {"size": 13}}, xaxis_title="n_samples", xaxis_type="log", yaxis_title=metric)
        figs.append(("learning-curve", fig))
    elif task and "n_samples" in trials and len(trials):
        best = trials.sort_values(task, ascending=False).groupby("n_samples", as_index=False).first().sort_values("n_samples")
        fig = go.Figure(go.Scatter(x=best.n_samples, y=best[task], mode="lines+markers", name="best trial",
                                   error_y={"type": "data", "symmetric": False, "array": best[f"{task} ci_high"] - best[task],
                                            "arrayminus": best[task] - best[f"{task} ci_low"]}))
        fig.update_layout(title=f"Learning curve: {task} vs training samples (best trial per size, 95% CI)", xaxis_title="n_samples",
                          yaxis_title=task)
        figs.append(("learning-curve", fig))
    if task and "learning_rate" in trials and trials.learning_rate.nunique() > 1:  # one rate: nothing to compare
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
    if data.study is None:  # per-item scores made elsewhere: no Optuna study to draw
        return figs
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


def verdict(best: BestDoc) -> str:
    """The report's first line: does the pick (or anything) beat the base model?"""
    if best.candidate == "base":
        tail = f" ({', '.join(best.others_beating_base)} beat the base, but not by the margin)" if best.others_beating_base else ""
        return f"The pick is the base model: no fine-tune is shown to gain more than the margin {best.margin:g}{tail}."
    if best.vs_base is None:
        return "No base model in this study to compare with."
    vs = best.vs_base
    on = f" on {best.confirmed.on}" if best.confirmed else ""
    if best.beats_base:
        return (f"{best.candidate} beats the base model: objective {vs.diff:+.4f}{on} "
                f"(95% CI {vs.ci[0]:+.4f} to {vs.ci[1]:+.4f}, one-sided p {vs.p_holm:.3g}).")
    if best.others_beating_base:
        return (f"The pick {best.candidate} is not shown to beat the base model ({vs.diff:+.4f}{on}, p {vs.p_holm:.3g}); "
                f"{', '.join(best.others_beating_base)} {'does' if len(best.others_beating_base) == 1 else 'do'} (one-sided, "
                "Holm-corrected).")
    return ("No candidate beats the base model on the objective (one-sided tests, Holm-corrected); "
            "the pick below is the rule's choice, not an improvement.")


def decision(best: BestDoc) -> str:
    """The pick in one paragraph: what it is, whether the rule could show it, what its number rests on."""
    c = best.confirmed
    text = f"Pick: {best.candidate} (objective {best.objective:.4f}"
    if c is not None:
        where = f"all {c.n_items} items" if c.on == "all items" else f"{c.n_items} {c.on}"
        text += f", 95% CI {c.ci[0]:.4f} to {c.ci[1]:.4f}, on {where}"
        if c.on == "all items":
            text += ": the same items it was chosen on, so optimistic (too few items to hold some out)"
    text += f"). Rule: {best.rule}. Utility: {best.utility}."
    if best.shown_within_margin is False:
        text += (f" Cannot tell: no candidate is shown within {best.margin:g} of the others on these items; the pick is the "
                 "rule's fallback, and scoring more items would decide.")
    elif best.near_best:
        text += f" Shown within the margin of the others: {', '.join(best.near_best)}."
    if best.runner_up:
        text += f" Runner-up: {best.runner_up.candidate} (objective {best.runner_up.objective:.4f} on the selection items)."
    return text


def pareto_front(data: StudyData) -> list[str] | None:
    """A multi-objective study's candidates that no other beats on every objective."""
    directions = data.meta.get("directions") or ["maximize"]
    if len(directions) < 2:
        return None
    signs = [1 if d == "maximize" else -1 for d in directions]
    points = {r.candidate: [s * getattr(r, f"objective{i or ''}") for i, s in enumerate(signs)] for r in data.trials.itertuples()}
    return [c for c, p in points.items()
            if not any(all(q_i >= p_i for q_i, p_i in zip(q, p, strict=True)) and q != p for q in points.values())]


def write(data: StudyData, out: Path, rule: str = "non-inferior", options: PickOptions | None = None,
          target: tuple[str, float] | None = None, where: str | None = None) -> BestDoc:
    """The report in `out`; `where`: the study's storage (shown) or the items' path, for its card."""
    out.mkdir(parents=True, exist_ok=True)
    options = options or options_for(data)
    alpha = options.alpha
    board = leaderboard(data, alpha)
    best = pick(data, rule, options)
    best.pareto_front = pareto_front(data)
    curve = learning_curve(data, target)
    if curve[1] is not None:
        best.forecast = curve[1].document(sentence=curve[2])
    shown = board.drop(columns=["number", "is_base", "start", "complete", "outputs"], errors="ignore")
    shown.insert(0, "", ["★ base" if b else ("✔ pick" if c == best.candidate else "") for b, c in zip(board.is_base, board.candidate)])
    legend = MARKS_LEGEND.format(level=1 - alpha)
    atomic_write(out / paths.LEADERBOARD_CSV, shown.to_csv(index=False))
    atomic_write(out / paths.LEADERBOARD_MD, f"# {data.name}: leaderboard\n\n{verdict(best)}\n\n{decision(best)}\n\n"
                 + shown.to_markdown(index=False, floatfmt=".4g") + f"\n\n{legend}\n" + (f"\n{curve[2]}\n" if curve[2] else ""))
    with atomic_path(out / paths.RESULTS) as tmp:
        tidy_results(data).to_parquet(tmp, index=False)
    documents.write(out / paths.BEST, best)
    documents.write(out / paths.CARD, study_index.card(data, best, verdict(best), curve[2], "sweep" if data.study is not None else "items",
                                                       where))
    parts = [f"<h1>{escape(data.name)}</h1>", f"<p id='verdict'><b>{escape(verdict(best))}</b></p>",
             f"<p id='pick'>{escape(decision(best))}</p>"]
    if best.pareto_front is not None:
        parts.append(f"<p id='pareto'>Pareto front (no other candidate is better on every objective): "
                     f"{escape(', '.join(best.pareto_front))}. The pick follows the utility above.</p>")
    if curve[2]:
        parts.append(f"<p id='forecast'>{escape(curve[2])}</p>")
    parts += ["<h2>Leaderboard</h2>", shown.to_html(index=False, table_id="leaderboard", float_format=lambda v: f"{v:.4g}"),
              f"<p>{escape(legend)}</p>"]
    if "rungs" in board:
        parts.append("<p>Multi-fidelity: <i>rungs</i> lists the n_samples each trial was trained on in turn; each arrow is "
                     "a promotion by the pruner, and pruned trials are listed below with the rung they stopped at.</p>")
    if len(data.failed):
        parts += ["<h2>Failed and pruned trials</h2>", data.failed.to_html(index=False, table_id="failed")]
    for i, (name, fig) in enumerate(figures(data, board, curve)):
        parts.append(f'<div class="plot" id="plot-{name}">' + fig.to_html(full_html=False, include_plotlyjs=i == 0) + "</div>")
    html = ("<!doctype html><html><head><meta charset='utf-8'><title>harness report: " + escape(data.name) + "</title>"
            "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>" + "\n".join(parts) + "</body></html>")
    atomic_write(out / paths.REPORT_HTML, html)
    return best
