"""`harness report` / `harness leaderboard`: what a sweep found, from the study and its items alone.

The pick: the best objective, except that among the candidates whose paired difference from the top
is not significant on any weighted suite (sign-flip permutation test, Holm-corrected, alpha 0.05)
the cheapest to train and serve wins: fewest training samples, then smallest rank
(`--pick best-mean` turns this off). The rule and the runner-up are written into best.json and the
report itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from harness.errors import UserError
from harness.stats import mean_ci, metric_frame, paired_difference

S = optuna.trial.TrialState


@dataclass
class StudyData:
    name: str
    study: optuna.Study
    meta: dict  # weights, headline, directions (written by the sweep)
    trials: pd.DataFrame  # one row per candidate (base + complete trials)
    failed: pd.DataFrame  # failed / pruned trials with their reasons
    items: pd.DataFrame  # every candidate's items
    params: list[str]  # the searched parameters
    _headline: dict | None = None  # cache of _headline_values


def load(study_name: str, storage: str | None = None) -> StudyData:
    from harness.sweep import storage_for

    if storage is None and not (Path("runs") / study_name / "journal.log").is_file():
        raise UserError(f"study {study_name}: no runs/{study_name}/journal.log here (give --storage for sqlite/postgresql)")
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_for(study_name, storage))
    except KeyError:
        raise UserError(f"study {study_name}: not found in {storage or 'its journal file'}") from None
    meta = study.user_attrs.get("objective", {})
    rows, failed, frames = [], [], []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        name = "base" if t.user_attrs.get("candidate") == "base" else f"trial-{t.number}"
        params = params_of(t)
        if t.state != S.COMPLETE:
            if t.state in (S.FAIL, S.PRUNED):
                failed.append({"candidate": name, "state": t.state.name, **params, "rungs": _rungs(t),
                               "reason": t.user_attrs.get("fail_reason", "")})
            continue
        items_path = Path(t.user_attrs.get("dir", "")) / "items.parquet"
        if items_path.is_file():
            frames.append(pd.read_parquet(items_path))
        rows.append({"candidate": name, "number": t.number, "is_base": name == "base", **params, "_params": params, "rungs": _rungs(t),
                     **{f"objective{i or ''}": v for i, v in enumerate(t.values)},
                     "train_s": t.user_attrs.get("train_s", 0.0), "tokens_seen": t.user_attrs.get("tokens_seen", 0),
                     "score_s": t.user_attrs.get("score_s"), "adapter": t.user_attrs.get("adapter"), "dir": t.user_attrs.get("dir"),
                     "start": t.datetime_start, "complete": t.datetime_complete})
    if not rows:
        raise UserError(f"study {study_name}: no complete trials yet")
    items = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["candidate", "suite", "item_id", "metrics"])
    params = list(dict.fromkeys(k for t in study.get_trials(deepcopy=False) for k in params_of(t)))
    trials, failed = pd.DataFrame(rows), pd.DataFrame(failed)
    if not trials.rungs.astype(bool).any():  # not a multi-fidelity study
        trials = trials.drop(columns="rungs")
        failed = failed.drop(columns="rungs", errors="ignore")
    return StudyData(study_name, study, meta, trials, failed, items, params)


def params_of(t: optuna.trial.FrozenTrial) -> dict:
    """The trial's params; under multi_fidelity n_samples is the rung it reached, not a sampled param."""
    if "n_samples" in t.params or "n_samples" not in t.user_attrs:
        return dict(t.params)
    return {**t.params, "n_samples": t.user_attrs["n_samples"]}


def _rungs(t: optuna.trial.FrozenTrial) -> str:
    """Multi-fidelity: the n_samples rungs a trial climbed ("32→96"); each arrow is a promotion."""
    return "→".join(str(r["n_samples"]) for r in t.user_attrs.get("rungs", []))


def _headline_values(data: StudyData) -> dict[tuple[str, str], pd.Series]:
    """(candidate, suite) -> per-item values of the suite's headline metric, indexed by item id (computed once)."""
    if data._headline is None:
        data._headline = _compute_headline(data)
    return data._headline


def _compute_headline(data: StudyData) -> dict[tuple[str, str], pd.Series]:
    long = metric_frame(data.items)
    headline = data.meta.get("headline", {})
    out = {}
    for (cand, suite), group in long.groupby(["candidate", "suite"]):
        metric = headline.get(suite) or group["metric"].iloc[0]
        out[(cand, suite)] = group[group.metric == metric].set_index("item_id")["value"].astype(float)
    return out


def leaderboard(data: StudyData, alpha: float = 0.05) -> pd.DataFrame:
    """One row per candidate, base first; suite headlines with CIs, Δ vs base with significance."""
    values = _headline_values(data)
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
            deltas.append(f"{d['diff']:+.3f}{'*' if d['p_value'] < alpha else ''}")
        board[f"Δ{suite} vs base"] = deltas
    direction = (data.meta.get("directions") or ["maximize"])[0]
    rest = board[~board.is_base].sort_values("objective", ascending=direction == "minimize")
    return pd.concat([board[board.is_base], rest], ignore_index=True)


def pick(data: StudyData, rule: str = "cheapest-tied", alpha: float = 0.05) -> dict:
    """The candidate to ship and why; see the module docstring for the rule."""
    direction = (data.meta.get("directions") or ["maximize"])[0]
    ranked = data.trials.sort_values("objective", ascending=direction == "minimize").reset_index(drop=True)
    top = ranked.iloc[0]
    weights = {s: w for s, w in data.meta.get("weights", {}).items() if w}
    values = _headline_values(data)
    chosen, tied, tests = top, [top.candidate], []
    if rule == "cheapest-tied" and len(ranked) > 1:
        for cand in ranked.candidate[1:]:
            for suite in weights:
                if (cand, suite) in values and (top.candidate, suite) in values:
                    d = paired_difference(values[(top.candidate, suite)], values[(cand, suite)])
                    sign = 1 if direction == "maximize" else -1
                    tests.append({"candidate": cand, "suite": suite, "diff": d["diff"], "p": d["p_value"] if sign * d["diff"] > 0 else 1.0})
        adjusted = holm([t["p"] for t in tests])
        for t, p in zip(tests, adjusted, strict=True):
            t["p_holm"] = p
        worse = {t["candidate"] for t in tests if t["p_holm"] < alpha}
        tied += [c for c in ranked.candidate[1:] if c not in worse and any(t["candidate"] == c for t in tests)]
        pool = ranked[ranked.candidate.isin(tied)]
        cost_cols = [c for c in ("n_samples", "lora_r") if c in pool]
        pool = pool.assign(_base_last=pool.is_base.astype(int))  # the base costs nothing but is not a fine-tune
        chosen = pool.sort_values(["_base_last", *cost_cols, "objective"], ascending=[True] * (1 + len(cost_cols)) + [direction == "minimize"]).iloc[0]
    runner_up = top if chosen.candidate != top.candidate else (ranked.iloc[1] if len(ranked) > 1 else None)
    scores = {s: mean_ci(values[(chosen.candidate, s)]) for (c, s) in values if c == chosen.candidate}
    return {
        "study": data.name,
        "candidate": chosen.candidate,
        "adapter": chosen.adapter,
        "params": chosen["_params"],
        "objective": float(chosen.objective),
        "scores": scores,
        "rule": ("best objective" if rule == "best-mean" else
                 f"cheapest (fewest n_samples, then smallest lora_r) among candidates not significantly worse than the top "
                 f"on any weighted suite (paired sign-flip test, Holm-corrected, alpha={alpha})"),
        "tied_with_top": tied,
        "runner_up": None if runner_up is None else {"candidate": runner_up.candidate, "objective": float(runner_up.objective)},
    }


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone)."""
    order = sorted(range(len(pvalues)), key=pvalues.__getitem__)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def tidy_results(data: StudyData) -> pd.DataFrame:
    """results.parquet: one row per candidate x suite x metric."""
    from harness.stats import summarize

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
    shown.to_csv(out / "leaderboard.csv", index=False)
    (out / "leaderboard.md").write_text(f"# {data.name}: leaderboard\n\n" + shown.to_markdown(index=False, floatfmt=".4g") + "\n")
    tidy_results(data).to_parquet(out / "results.parquet", index=False)
    (out / "best.json").write_text(json.dumps(best, indent=2, default=str))
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
    (out / "index.html").write_text(html)
    return best
