"""Reports: the pick rule on a constructed study, the report's files and the leaderboard's formats."""

import json

import pandas as pd
import pytest
from conftest import run_cli

from harness.config import PickOptions
from harness.select.pick import holm, pick
from harness.store import reading
from harness.store import study as studies


def test_the_cheaper_candidate_ships_only_when_shown_within_the_margin(constructed):
    data = reading.load_study("picked")  # trial numbers: base 0, top 1, cheap 2 (2 items of 100 worse), weak 3 (30 worse)
    strict = pick(data)  # margin 0.02: 100 items cannot show any candidate within 0.02 of the others (Holm over 4)
    assert strict.candidate == "trial-1" and strict.shown_within_margin is False and strict.near_best == []  # the fallback
    loose = pick(data, options=PickOptions(margin=0.1))
    assert loose.candidate == "trial-2" and set(loose.near_best) == {"trial-1", "trial-2"}
    assert loose.params == {"lora_r": 8, "n_samples": 256, "learning_rate": 3e-4}
    assert loose.runner_up.candidate == "trial-1" and "Holm" in loose.rule and loose.margin == 0.1
    assert loose.confirmed.on == "all items" and loose.confirmed.n_items == 100  # too few items to hold some out
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
    assert md.splitlines()[2].startswith("trial-1 beats the base model") and "▲ shown better" in md
    tidy = pd.read_parquet(out / "results.parquet")
    assert set(tidy.columns) >= {"candidate", "suite", "metric", "value", "ci_low", "ci_high", "n"}
    # The learning curve: 3 sizes are too few to check a fit out of sample; the page says so, and which size helps.
    forecast = best["forecast"]
    assert [p["n"] for p in forecast["points"]] == [64, 256, 1024] and forecast["target"]["value"] == 0.89
    assert "needs 4" in forecast["abstained"] and forecast["target"]["n"]["estimate"] is None and forecast["suggest"]["n"] == 2048
    html = (out / "index.html").read_text()
    assert "id='forecast'" in html and "no forecast" in html and "n=2,048" in html and 'id="plot-learning-curve"' in html
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
    assert "a forecast needs 4 or more" in html




def _items_csv(path, per_candidate: dict, costs: dict | None = None):
    """candidate -> suite -> 0/1 values, as the --items table a user writes (with cost columns)."""
    rows = [{"candidate": c, "suite": s, "item_id": f"q{i}", "score": float(v), **(costs or {}).get(c, {})}
            for c, suites in per_candidate.items() for s, values in suites.items() for i, v in enumerate(values)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_the_verdict_names_who_beats_the_base(tmp_path):
    import numpy as np

    base = np.array([1.0] * 37 + [0.0] * 23)  # 60 items, base 37 right
    better = base.copy()
    better[37:46] = 1.0  # trial-1: 9 more right
    some = base.copy()
    some[37:40] = 1.0  # trial-2: 3 of those 9
    csv = _items_csv(tmp_path / "scores.csv", {"base": {"qa": base}, "trial-1": {"qa": better}, "trial-2": {"qa": some}},
                     {"base": {"n_samples": 0}, "trial-1": {"n_samples": 1000}, "trial-2": {"n_samples": 100}})
    proc = run_cli("report", "--items", str(csv), "--margin", "0.2", cwd=tmp_path)  # a margin wide enough to ship trial-2
    assert proc.returncode == 0, proc.stderr
    best = json.loads((tmp_path / "reports/scores/best.json").read_text())
    assert best["candidate"] == "trial-2" and best["beats_base"] is False and best["others_beating_base"] == ["trial-1"]
    assert best["vs_base"]["diff"] == pytest.approx(3 / 60)
    first = proc.stdout.splitlines()[0]
    assert first.startswith("The pick trial-2 is not shown to beat the base model") and "trial-1 does" in first
    strict = run_cli("report", "--items", str(csv), "--out", str(tmp_path / "strict"), cwd=tmp_path)
    assert json.loads((tmp_path / "strict/best.json").read_text())["candidate"] == "trial-1"
    assert strict.stdout.startswith("trial-1 beats the base model")


def test_report_and_gate_from_items_made_anywhere(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    per = {"base": {"qa": (rng.random(80) < 0.4).astype(float)}, "unsloth-r8": {"qa": (rng.random(80) < 0.8).astype(float)}}
    csv = _items_csv(tmp_path / "made.csv", per, {"unsloth-r8": {"lora_r": 8}})
    proc = run_cli("report", "--items", str(csv), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "reports/made"
    assert {"index.html", "leaderboard.md", "leaderboard.csv", "best.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "best.json").read_text())["candidate"] == "unsloth-r8"
    (tmp_path / "rules.yaml").write_text("rules:\n  - {metric: qa.score, threshold: 0.5, mode: confident}\n"
                                         "  - {metric: qa.score, max_regression: 0.0, mode: confident}\n")
    gate = run_cli("gate", "--rules", str(tmp_path / "rules.yaml"), "--items", str(csv), "--candidate", "best",
                   "--baseline", "base", cwd=tmp_path)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    bad = _items_csv(tmp_path / "bad.csv", per)
    pd.read_csv(bad).drop(columns="item_id").to_csv(bad, index=False)
    proc = run_cli("report", "--items", str(bad), cwd=tmp_path)
    assert proc.returncode == 2 and "item_id" in proc.stderr and "Traceback" not in proc.stderr


def test_base_names_the_base_candidate_of_items_made_anywhere(tmp_path):
    """--base zero-shot: that candidate is the base (compared against, shown as base); a --base that
    names no candidate is exit 2 rather than a report with no base."""
    import numpy as np

    base = np.array([1.0] * 30 + [0.0] * 30)
    tuned = base.copy()
    tuned[30:50] = 1.0  # 20 more right of 60
    csv = _items_csv(tmp_path / "runs.csv", {"zero-shot": {"qa": base}, "tuned": {"qa": tuned}})
    proc = run_cli("report", "--items", str(csv), "--base", "zero-shot", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    best = json.loads((tmp_path / "reports/runs/best.json").read_text())
    assert best["candidate"] == "tuned" and best["beats_base"] is True and best["vs_base"]["diff"] == pytest.approx(20 / 60)
    assert pd.read_csv(tmp_path / "reports/runs/leaderboard.csv").candidate.tolist() == ["base", "tuned"]  # the base row first, as always
    plain = run_cli("report", "--items", str(csv), "--out", str(tmp_path / "plain"), cwd=tmp_path)  # no base named: none compared
    assert plain.returncode == 0 and json.loads((tmp_path / "plain/best.json").read_text()).get("vs_base") is None
    (tmp_path / "rules.yaml").write_text("rules:\n  - {metric: qa.score, max_regression: 0.0, mode: confident}\n")
    gate = run_cli("gate", "--rules", str(tmp_path / "rules.yaml"), "--items", str(csv), "--base", "zero-shot",
                   "--candidate", "tuned", "--baseline", "base", "--json", str(tmp_path / "gate.json"), cwd=tmp_path)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    verdict = json.loads((tmp_path / "gate.json").read_text())
    assert verdict["baseline"] == "base" and verdict["passed"] is True
    for cmd in (["report", "--items", str(csv)], ["gate", "--rules", str(tmp_path / "rules.yaml"), "--items", str(csv)]):
        wrong = run_cli(*cmd, "--base", "zeroshot", cwd=tmp_path)
        assert wrong.returncode == 2 and "--base zeroshot" in wrong.stderr and "zero-shot" in wrong.stderr, wrong.stderr
        assert "Traceback" not in wrong.stderr


def test_report_from_lm_eval_log_samples(tmp_path):
    import numpy as np

    rng = np.random.default_rng(1)
    for model, p, args in (("__models__base", 0.3, "pretrained=/models/base"), ("__models__adapter", 0.7, "pretrained=/models/base,peft=/a")):
        folder = tmp_path / "lm" / model
        folder.mkdir(parents=True)
        (folder / "results_2026-12-01T10-00-00.json").write_text(json.dumps({"config": {"model_args": args}}))
        lines = [json.dumps({"doc_id": i, "filter": "none", "metrics": ["acc", "acc_norm"], "acc": float(v), "acc_norm": float(v)})
                 for i, v in enumerate(rng.random(60) < p)]
        (folder / "samples_arc_easy_2026-12-01T10-00-00.jsonl").write_text("\n".join(lines) + "\n")
    proc = run_cli("report", "--items", str(tmp_path / "lm"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    best = json.loads((tmp_path / "reports/lm/best.json").read_text())
    assert best["candidate"] == "__models__adapter" and best["beats_base"] is True
    board = pd.read_csv(tmp_path / "reports/lm/leaderboard.csv")
    assert board.candidate.iloc[0] == "base" and "arc_easy" in board.columns


def test_a_multi_objective_study_shows_its_pareto_front_and_picks_by_the_first_objective():
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import decisions as sim

    from harness.select.report import pareto_front

    rng = np.random.default_rng(0)
    values = {c: {"task": (rng.random(300) < p).astype(float), "guard": (rng.random(300) < q).astype(float)}
              for c, p, q in (("trial-1", 0.9, 0.3), ("trial-2", 0.5, 0.8), ("trial-3", 0.4, 0.2))}
    data = sim.study_of(values, {"trial-1": 100.0, "trial-2": 100.0, "trial-3": 10.0})
    data.trials["objective"] = [v["task"].mean() for v in values.values()]
    data.trials["objective1"] = [v["guard"].mean() for v in values.values()]
    data.meta.update({"directions": ["maximize", "maximize"],
                      "objectives": [{"suite": "task", "metric": "score", "direction": "maximize"},
                                     {"suite": "guard", "metric": "score", "direction": "maximize"}]})
    assert pareto_front(data) == ["trial-1", "trial-2"]  # trial-3 is beaten on both
    best = pick(data)
    assert best.candidate == "trial-1" and best.utility.startswith("the first objective, task.score")


def study_with(root, name: str, objective: dict, trials: dict) -> None:
    """A real study (journal, items, artifacts) with its own objective record; trials: name -> (params, {suite: {metric: values}})."""
    import optuna
    from conftest import make_study
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    make_study(root, name, trials)
    study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(root / "runs" / name / "journal.log"))))
    study.set_user_attr("objective", objective)


def test_a_minimized_objective_picks_the_lowest_and_the_report_options_take_effect(tmp_path, harness_home):
    """objectives: [{metric: loss, direction: minimize}]: the pick is the lowest loss, whatever the suite's headline says."""
    import numpy as np

    rng = np.random.default_rng(3)
    low_loss = {"extraction": {"field_f1": np.full(200, 0.80), "loss": rng.normal(0.20, 0.05, 200)}}
    high_loss = {"extraction": {"field_f1": np.full(200, 0.95), "loss": rng.normal(0.60, 0.05, 200)}}
    study_with(tmp_path, "lossy", {"weights": {"extraction": 1.0}, "headline": {"extraction": "field_f1"}, "directions": ["minimize"],
                                   "objectives": [{"suite": "extraction", "metric": "loss", "direction": "minimize"}]},
               {"base": ({}, {"extraction": {"field_f1": np.zeros(200), "loss": rng.normal(2.0, 0.1, 200)}}),
                "trial-1": ({"lora_r": 8, "n_samples": 64}, high_loss), "trial-2": ({"lora_r": 8, "n_samples": 64}, low_loss)})
    out = tmp_path / "elsewhere"
    runs = {alpha: run_cli("report", "lossy", "--pick", "best-mean", "--alpha", alpha, "--out", str(out / alpha), cwd=tmp_path)
            for alpha in ("0.05", "0.25")}
    assert all(p.returncode == 0 for p in runs.values()), [p.stderr[-1500:] for p in runs.values()]
    assert not (tmp_path / "reports/lossy").exists()  # --out is where it all went
    best = {a: json.loads((out / a / "best.json").read_text()) for a in runs}
    assert best["0.05"]["candidate"] == "trial-2" and best["0.05"]["utility"] == "the objective, extraction.loss (minimized)"
    assert best["0.05"]["rule"] == "best objective on the selection items"  # --pick best-mean
    wide, narrow = (best[a]["confirmed"]["ci"] for a in ("0.05", "0.25"))
    assert narrow[1] - narrow[0] < wide[1] - wide[0]  # --alpha: a 75% interval is narrower than a 95% one
    assert pd.read_csv(out / "0.05/leaderboard.csv").candidate.tolist()[1:] == ["trial-2", "trial-1"]  # lowest loss first
    # The default rule on the same study: the low-loss trial is shown better, so nothing cheaper is near it.
    default = run_cli("report", "lossy", "--out", str(out / "rule"), cwd=tmp_path)
    assert default.returncode == 0 and json.loads((out / "rule/best.json").read_text())["candidate"] == "trial-2"


def test_equal_sample_counts_break_the_tie_by_the_smaller_lora_rank(tmp_path, harness_home, monkeypatch):
    import numpy as np
    from conftest import bern, make_study

    top = bern(0.8, 400, 5)
    close = top.copy()
    close[np.flatnonzero(top)[:3]] = 0.0  # 3 items of 400 worse: within 0.1, and told apart from nothing
    make_study(tmp_path, "ranks", {
        "base": ({}, {"extraction": {"field_f1": np.zeros(400)}}),
        "trial-1": ({"lora_r": 8, "n_samples": 64}, {"extraction": {"field_f1": top}}),
        "trial-2": ({"lora_r": 4, "n_samples": 64}, {"extraction": {"field_f1": close}}),
    })
    monkeypatch.chdir(tmp_path)
    data = reading.load_study("ranks")
    near = pick(data, options=PickOptions(margin=0.1))
    assert near.candidate == "trial-2" and set(near.near_best) == {"trial-1", "trial-2"}  # same samples: the smaller rank
    none_shown = pick(data, options=PickOptions(margin=0.0001))
    assert none_shown.candidate == "trial-1" and not none_shown.shown_within_margin  # the fallback: the most-trained (larger rank)


def test_confirm_holds_out_a_tenth_of_a_large_suite_and_no_confirm_reports_on_all_items(tmp_path):
    """--confirm (the default) picks on nine items in ten and reports the pick's score on the tenth it was
    not chosen on; --no-confirm picks and reports on all of them."""
    import numpy as np

    rng = np.random.default_rng(7)
    per = {"base": {"qa": (rng.random(600) < 0.4).astype(float)}, "tuned": {"qa": (rng.random(600) < 0.7).astype(float)}}
    csv = _items_csv(tmp_path / "big.csv", per)
    best = {}
    for flag in ("--confirm", "--no-confirm"):
        proc = run_cli("report", "--items", str(csv), flag, "--out", str(tmp_path / flag), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        best[flag] = json.loads((tmp_path / flag / "best.json").read_text())
    held, every = best["--confirm"]["confirmed"], best["--no-confirm"]["confirmed"]
    assert held["on"] == "confirmation items" and 30 <= held["n_items"] <= 90  # about a tenth of 600
    assert every["on"] == "all items" and every["n_items"] == 600
    assert best["--no-confirm"]["objective"] == pytest.approx(per["tuned"]["qa"].mean())
    assert best["--confirm"]["objective"] != pytest.approx(best["--no-confirm"]["objective"])  # other items, another mean
    assert held["ci"][1] - held["ci"][0] > 2 * (every["ci"][1] - every["ci"][0])  # a tenth of the items: a wider interval
