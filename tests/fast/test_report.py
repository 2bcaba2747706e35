"""Reports: the pick rule on a constructed study, the report's files and the leaderboard's formats."""

import json

import pandas as pd
import pytest
from conftest import run_cli

from harness import store
from harness.select.pick import holm, pick


def test_pick_prefers_the_cheaper_candidate_when_the_top_is_not_significantly_better(constructed):
    data = store.load_study("picked")
    best = pick(data)
    assert best["candidate"] == "trial-2"  # the cheap one (trial numbers: base 0, top 1, cheap 2, weak 3)
    assert best["params"] == {"lora_r": 8, "n_samples": 256, "learning_rate": 3e-4}
    assert best["runner_up"]["candidate"] == "trial-1" and "Holm" in best["rule"]
    assert "trial-3" not in best["tied_with_top"]
    assert pick(data, "best-mean")["candidate"] == "trial-1"


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_report_files_and_leaderboard_formats(constructed):
    proc = run_cli("report", "picked", cwd=constructed)
    assert proc.returncode == 0, proc.stderr
    out = constructed / "reports/picked"
    for name in ("index.html", "leaderboard.md", "leaderboard.csv", "results.parquet", "best.json"):
        assert (out / name).is_file(), name
    board = pd.read_csv(out / "leaderboard.csv")
    assert board.candidate.iloc[0] == "base" and board.iloc[0, 0] == "★ base"
    assert list(board.candidate[1:]) == ["trial-1", "trial-2", "trial-3"]  # sorted by objective
    assert "Δextraction vs base" in board.columns and board["Δextraction vs base"].iloc[1].endswith("*")
    assert board["extraction ci_low"].iloc[1] <= board["extraction"].iloc[1] <= board["extraction ci_high"].iloc[1]
    tidy = pd.read_parquet(out / "results.parquet")
    assert set(tidy.columns) >= {"candidate", "suite", "metric", "value", "ci_low", "ci_high", "n"}
    html = (out / "index.html").read_text()
    import re

    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", html), "the report loads something from the network"
    assert html.count("<script") >= 5 and "Plotly.newPlot" in html
    as_json = run_cli("leaderboard", "picked", "--format", "json", cwd=constructed)
    assert json.loads(as_json.stdout)[0]["candidate"] == "base"


