"""Reports: the pick rule on constructed items, and the full report in a real headless browser."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import run_cli

from harness import store
from harness.select.pick import holm, pick
from harness.store import storage_for


def add_candidate(study, root: Path, name: str, params: dict, f1: np.ndarray, objective: float, is_base=False):
    folder = root / name
    folder.mkdir(parents=True)
    rows = [{"candidate": name, "candidate_hash": f"h{name}", "suite": "extraction", "suite_version": "v", "item_id": f"i{i}",
             "prediction": "", "reference": "", "score": float(v), "metrics": json.dumps({"field_f1": float(v)}), "tokens": 1,
             "extra": "{}", "backend": "hf", "dtype": "float32"} for i, v in enumerate(f1)]
    pd.DataFrame(rows).to_parquet(folder / "items.parquet")
    dists = {"lora_r": optuna.distributions.CategoricalDistribution([8, 16, 64]),
             "n_samples": optuna.distributions.CategoricalDistribution([64, 256, 1024]),
             "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)}
    attrs = {"dir": str(folder), "adapter": str(folder / "adapter"), "train_s": 1.0, "tokens_seen": 10, "score_s": 1.0}
    if is_base:
        attrs["candidate"] = "base"
    study.add_trial(optuna.trial.create_trial(params={} if is_base else params, distributions={} if is_base else dists,
                                              values=[objective], user_attrs=attrs))


@pytest.fixture()
def constructed(tmp_path, monkeypatch):
    """base (0.1), a big expensive top (0.90) and a cheap one (0.88, within noise of the top)."""
    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(study_name="picked", storage=storage_for("picked"))
    study.set_user_attr("objective", {"weights": {"extraction": 1.0}, "headline": {"extraction": "field_f1"}, "directions": ["maximize"]})
    rng = np.random.default_rng(0)
    top = (rng.random(100) < 0.90).astype(float)
    cheap = top.copy()
    cheap[np.flatnonzero(top)[:2]] = 0.0  # 2 items worse out of 100: not significant
    weak = top.copy()
    weak[np.flatnonzero(top)[:30]] = 0.0  # 30 items worse: significant
    root = tmp_path / "runs/picked"
    # Named as a sweep names them: the base, then trial-<number>.
    add_candidate(study, root, "base", {}, np.zeros(100), 0.0, is_base=True)
    add_candidate(study, root, "trial-1", {"lora_r": 64, "n_samples": 1024, "learning_rate": 1e-4}, top, top.mean())
    add_candidate(study, root, "trial-2", {"lora_r": 8, "n_samples": 256, "learning_rate": 3e-4}, cheap, cheap.mean())
    add_candidate(study, root, "trial-3", {"lora_r": 8, "n_samples": 64, "learning_rate": 3e-4}, weak, weak.mean())
    return tmp_path


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


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (make test installs it when root)")
def test_report_loads_in_a_real_browser_without_console_errors(constructed, tmp_path):
    assert run_cli("report", "picked", cwd=constructed).returncode == 0
    page = constructed / "reports/picked/index.html"
    shot = tmp_path / "report.png"
    # Dump the DOM after scripts ran, and keep the console log; a fresh profile, no network.
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()],
                   capture_output=True, text=True, timeout=120)
    assert 'id="leaderboard"' in dom.stdout
    for plot in ("learning-curve", "score-vs-lr", "suite-bars", "importances", "timeline"):
        assert f'id="plot-{plot}"' in dom.stdout, plot
    assert dom.stdout.count("main-svg") >= 5, "plotly did not render the plots"
    console_errors = [l for l in dom.stderr.splitlines() if "CONSOLE" in l and ("Error" in l or "error" in l)]
    assert not console_errors, console_errors
    assert shot.is_file() and shot.stat().st_size > 10_000
