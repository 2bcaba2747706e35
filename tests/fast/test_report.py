"""Reports: the pick rule on a constructed study, the report's files and the leaderboard's formats."""

import json

import pandas as pd
import pytest
from conftest import run_cli

from harness.select.pick import holm, pick
from harness.store import reading
from harness.store import study as studies


def test_pick_prefers_the_cheaper_candidate_when_the_top_is_not_significantly_better(constructed):
    data = reading.load_study("picked")
    best = pick(data)
    assert best.candidate == "trial-2"  # the cheap one (trial numbers: base 0, top 1, cheap 2, weak 3)
    assert best.params == {"lora_r": 8, "n_samples": 256, "learning_rate": 3e-4}
    assert best.runner_up.candidate == "trial-1" and "Holm" in best.rule
    assert "trial-3" not in best.tied_with_top
    assert pick(data, "best-mean").candidate == "trial-1"


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_report_files_verdict_marks_forecast_and_leaderboard_formats(constructed):
    proc = run_cli("report", "picked", "--target", "extraction.field_f1=0.89", cwd=constructed)
    assert proc.returncode == 0, proc.stderr
    out = constructed / "reports/picked"
    for name in ("index.html", "leaderboard.md", "leaderboard.csv", "results.parquet", "best.json"):
        assert (out / name).is_file(), name
    board = pd.read_csv(out / "leaderboard.csv")
    assert board.candidate.iloc[0] == "base" and board.iloc[0, 0] == "★ base"
    assert list(board.candidate[1:]) == ["trial-1", "trial-2", "trial-3"]  # sorted by objective
    assert board["extraction ci_low"].iloc[1] <= board["extraction"].iloc[1] <= board["extraction ci_high"].iloc[1]
    # Every Δ-vs-base cell carries its mark; the first line says whether anything beats the base.
    cells = list(board["Δextraction vs base"].dropna())
    assert len(cells) == 3 and cells[0].endswith(" ▲") and all(c.endswith((" ▲", " ▼", " ≈")) for c in cells)
    best = json.loads((out / "best.json").read_text())
    assert best["beats_base"] is True and best["vs_base"]["better"] and best["vs_base"]["ci"][0] > 0
    md = (out / "leaderboard.md").read_text()
    assert md.splitlines()[2].startswith("trial-2 beats the base model") and "▲ significantly better" in md
    tidy = pd.read_parquet(out / "results.parquet")
    assert set(tidy.columns) >= {"candidate", "suite", "metric", "value", "ci_low", "ci_high", "n"}
    # The learning curve: 3 sizes, a fit, the target's forecast in one sentence on the page.
    assert [p["n"] for p in best["forecast"]["points"]] == [64, 256, 1024] and best["forecast"]["target"]["value"] == 0.89
    html = (out / "index.html").read_text()
    assert "id='forecast'" in html and "extraction.field_f1 0.89" in html and 'id="plot-learning-curve"' in html
    import re

    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", html), "the report loads something from the network"
    assert html.count("<script") >= 5 and "Plotly.newPlot" in html
    as_json = run_cli("leaderboard", "picked", "--format", "json", cwd=constructed)
    assert json.loads(as_json.stdout)[0]["candidate"] == "base"


def test_no_candidate_beating_the_base_is_said_first(tmp_path, monkeypatch):
    import numpy as np
    import optuna
    from conftest import add_candidate

    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(study_name="flat", storage=studies.storage_for("flat"))
    study.set_user_attr("objective", {"weights": {"extraction": 1.0}, "headline": {"extraction": "field_f1"}, "directions": ["maximize"]})
    same = (np.random.default_rng(1).random(60) < 0.5).astype(float)
    nudged = same.copy()
    nudged[np.flatnonzero(same == 0)[:2]] = 1.0  # 2 items of 60 better: noise
    add_candidate(study, tmp_path / "runs/flat", "base", {}, same, same.mean(), is_base=True)
    add_candidate(study, tmp_path / "runs/flat", "trial-1", {"lora_r": 8, "n_samples": 64, "learning_rate": 1e-3}, nudged, nudged.mean())
    proc = run_cli("report", "flat", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    best = json.loads((tmp_path / "reports/flat/best.json").read_text())
    assert best["beats_base"] is False and best["candidate"] == "trial-1"
    assert proc.stdout.startswith("No candidate beats the base model")
    html = (tmp_path / "reports/flat/index.html").read_text()
    assert html.index("No candidate beats the base model") < html.index("Pick:")
    assert "forecast needs 3 or more" in html


