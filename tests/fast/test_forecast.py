"""Learning-curve forecasts: right on curves whose truth is known, honest where the data cannot tell,
and strict about their input (tests/calibration/ measures the error rates over many draws)."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import add_candidate, run_cli

from harness.errors import UserError
from harness.forecast import Curve, forecast
from harness.forecast.inputs import study_items

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import forecast_calibration as sim  # noqa: E402 - bench/ is not a package on the path

NS = [16, 32, 64, 128, 256]


def curve_of(means: dict[int, float], items: int = 200, seed: int = 0, runs: int = 1, run_sd: float = 0.0) -> pd.DataFrame:
    """0/1 items solved once a size's level passes their difficulty (monotone in n), per run shifted."""
    rng = np.random.default_rng(seed)
    u = rng.random(items)
    return pd.DataFrame([{"n_samples": n, "run": str(r), "item_id": f"i{i}", "score": float(u[i] < m + shift)}
                         for n, m in means.items() for r in range(runs) for shift in [rng.normal(0, run_sd)] for i in range(items)])


def power(n):
    return 0.9 - 1.5 * n ** -0.4


def test_a_power_law_is_forecast_with_intervals_that_hold_the_truth():
    f = forecast(Curve.from_items(curve_of({n: power(n) for n in NS}, items=400)), "t.acc", target=power(600), at=[1024, 4096],
                 n_boot=300)
    assert f.abstained is None and [p["n"] for p in f.points] == NS and all(p["n_items"] == 400 and p["runs"] == 1 for p in f.points)
    for row in f.at:
        lo, hi = row["ci"]
        assert lo <= power(row["n"]) <= hi and lo <= row["estimate"] <= hi and hi - lo > 0, row
    lo, hi = f.target["n"]["ci"]
    assert lo <= 600 and (hi is None or hi >= 600), f.target
    assert f.weights["power"] + f.weights["rectified"] > 0.5 and abs(sum(f.weights.values()) - 1) < 1e-3
    assert "samples (95% CI" in f.sentence() and "a next run at 1,024 samples" in f.sentence()


def test_late_learning_is_forecast_once_the_rise_shows_and_never_below_what_was_measured():
    """The issue's case: a logistic in log n with onset near 96; a power law forecast 1024 below n=256."""
    truth = lambda n: sim.logistic_in_log_n(n, 0.03, 0.92, 3.0, 160)  # noqa: E731
    sizes = [16, 32, 64, 128, 256, 512]
    f = forecast(Curve.from_items(curve_of({n: float(truth(n)) for n in sizes}, items=400, seed=3)), "t.acc", at=[2048], n_boot=300)
    assert f.abstained is None
    row = f.at[0]
    assert row["ci"][0] <= float(truth(2048)) <= row["ci"][1], row
    assert row["ci"][1] >= f.points[-1]["mean"]
    assert f.weights["rectified"] > 0.2, f.weights


def test_too_few_sizes_past_the_onset_abstain_and_name_the_size_that_helps():
    f = forecast(Curve.from_items(curve_of({16: 0.03, 32: 0.02, 64: 0.04, 128: 0.6})), "t.acc", target=0.9, at=[512], n_boot=100)
    assert f.abstained and "past the onset" in f.abstained
    assert f.at[0]["estimate"] is None and f.at[0]["ci"] is None and f.at[0]["reason"] == f.abstained
    assert f.plateau["estimate"] is None and f.target["n"]["estimate"] is None and f.target["n"]["ci"] is None
    assert f.suggest["n"] == 256 and "256" in f.sentence() and "no forecast" in f.sentence()
    with pytest.raises(ValueError, match="no band"):
        f.band(np.array([16.0, 64.0]))


def test_a_fit_that_misses_its_own_largest_size_abstains():
    """Steady power-law growth, then a jump no family fitted on the smaller sizes foresees."""
    means = {16: 0.30, 32: 0.36, 64: 0.41, 128: 0.45, 256: 0.95}
    f = forecast(Curve.from_items(curve_of(means, items=400)), "t.acc", at=[1024], n_boot=200)
    assert f.abstained and "predicts the measured" in f.abstained and "n=256" in f.abstained, f.abstained
    assert f.suggest["n"] == 512


def test_three_sizes_abstain_two_are_too_few_to_show_and_one_is_an_error():
    three = forecast(Curve.from_items(curve_of({16: 0.2, 64: 0.5, 256: 0.7})), "t.acc", at=[1024], n_boot=100)
    assert three.abstained and "needs 4" in three.abstained and len(three.points) == 3 and three.model == "none"
    with pytest.raises(UserError, match=re.escape("needs at least 2")):
        forecast(Curve.from_items(curve_of({16: 0.2})), "t.acc")


def test_a_plateau_at_the_cap_is_one_sided_never_zero_width():
    """W5's shape: saturating at a perfect score."""
    means = {16: 0.55, 32: 0.80, 64: 0.93, 128: 0.985, 256: 0.997}
    f = forecast(Curve.from_items(curve_of(means, items=200, seed=5)), "t.acc", at=[1024], n_boot=300)
    assert f.abstained is None
    assert f.plateau["estimate"] is None and f.plateau["one_sided"] and f.plateau["ci"][0] < 1.0, f.plateau
    row = f.at[0]
    assert row["one_sided"] and row["ci"][0] < row["ci"][1] == 1.0 and row["ci"][0] <= 0.999, row
    assert "at least" in f.sentence()


def test_no_learning_gives_a_lower_bound_only():
    f = forecast(Curve.from_items(curve_of({n: 0.42 for n in NS})), "t.acc", target=0.8, at=[4096], n_boot=200)
    row = f.at[0]
    assert f.abstained is None and row["one_sided"] and row["ci"][0] < 0.42 < row["ci"][1] == 1.0 and abs(row["estimate"] - 0.42) < 0.05
    assert f.plateau["estimate"] is None and "later onset" in f.plateau["reason"]
    assert f.target["n"]["estimate"] is None and "not reached" in f.target["reason"]


def test_a_target_reached_at_the_smallest_size_is_an_upper_bound():
    f = forecast(Curve.from_items(curve_of({n: power(n) for n in NS})), "t.acc", target=0.1, n_boot=100)
    assert f.target["n"] == {"estimate": None, "ci": [None, 16.0]} and "at most 16 samples" in f.sentence()


def test_replicates_measure_the_run_to_run_noise_and_widen_the_intervals():
    means = {n: power(n) for n in NS}
    quiet = forecast(Curve.from_items(curve_of(means, items=400, seed=1, runs=3)), "t.acc", at=[1024], n_boot=300)
    noisy = forecast(Curve.from_items(curve_of(means, items=400, seed=1, runs=3, run_sd=0.05)), "t.acc", at=[1024], n_boot=300)
    assert noisy.noise["source"] == "replicates" and 0.02 < noisy.noise["run_sd"] < 0.12 and quiet.noise["run_sd"] == 0, noisy.noise
    assert all(p["runs"] == 3 for p in noisy.points)
    width = lambda f: f.points[2]["ci"][1] - f.points[2]["ci"][0]  # noqa: E731 - a point's interval carries its runs' noise
    assert width(noisy) > 1.5 * width(quiet) > 0


def test_a_curve_that_drops_is_named_in_a_warning():
    f = forecast(Curve.from_items(curve_of({16: 0.3, 32: 0.5, 64: 0.1, 128: 0.6, 256: 0.7}, items=300)), "t.acc", n_boot=100)
    assert any("drops from n=32" in w and "n=64" in w for w in f.warnings), f.warnings


@pytest.mark.parametrize(("frame", "message"), [
    (pd.DataFrame({"n_samples": [16, 32], "item_id": ["a", "a"], "score": [0.5, 5.0]}), "score 5 of item 'a' at n_samples 32"),
    (pd.DataFrame({"n_samples": [16, 16, 32], "item_id": ["a", "a", "a"], "score": [1.0, 0.0, 1.0]}), "item_id 'a' appears 2 times"),
    (pd.DataFrame({"n_samples": [16, 32], "item_id": ["a", "b"], "score": [1.0, 1.0]}), "no items scored at every n_samples"),
])
def test_bad_items_are_refused_naming_the_field(frame, message):
    with pytest.raises(UserError, match=re.escape(message)):
        Curve.from_items(frame, "--items f.csv")


def test_harness_forecast_on_an_items_file_writes_the_json_contract(tmp_path):
    path = tmp_path / "curve.csv"
    curve_of({n: power(n) for n in NS}, items=300, seed=2).to_csv(path, index=False)
    out = tmp_path / "f.json"
    proc = run_cli("forecast", "--items", str(path), "--metric", "t.acc", "--target", "0.76", "--at", "1024", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert set(doc) >= {"metric", "model", "weights", "noise", "points", "plateau", "at", "target", "abstained", "suggest", "points_from"}
    assert [p["n"] for p in doc["points"]] == NS and all(len(p["ci"]) == 2 and p["n_items"] == 300 for p in doc["points"])
    assert doc["at"][0]["n"] == 1024 and doc["at"][0]["ci"][0] <= doc["at"][0]["estimate"] <= doc["at"][0]["ci"][1]
    assert doc["target"]["value"] == 0.76 and 0 <= doc["target"]["p_reachable"] <= 1 and doc["abstained"] is None
    assert "to reach t.acc 0.76" in proc.stdout and "curve families" in proc.stdout


BAD_FILES = [
    ("n_samples,item_id,score\n16,a,0.5\n32,a,5.0\n", "score 5 of item 'a' at n_samples 32"),
    ("n_samples,item_id,score\n16,a,0.5\n16,a,1.0\n32,a,1\n", "item_id 'a' appears 2 times at n_samples 16"),
    ("n_samples,item_id,score\n16,a,high\n", "score 'high' in row 2 is not a number"),
    ("n_samples,item,score\n16,a,1\n", "columns item_id missing"),
]


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
def test_bad_items_files_are_refused_naming_the_file_and_field(tmp_path, content, message):
    from harness.forecast.inputs import read_items_file

    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserError) as err:
        Curve.from_items(read_items_file(path), f"--items {path}")
    assert message in err.value.lines[0] and str(path) in err.value.lines[0] and len(err.value.lines) == 1


def test_harness_forecast_exits_2_on_a_bad_items_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_FILES[0][0])
    proc = run_cli("forecast", "--items", str(path), "--metric", "t.acc")
    assert proc.returncode == 2 and BAD_FILES[0][1] in proc.stderr and str(path) in proc.stderr and "Traceback" not in proc.stderr


def test_harness_forecast_on_a_study_with_three_sizes_abstains(constructed):
    proc = run_cli("forecast", "picked", "--metric", "extraction.field_f1", "--at", "4096", "--json", "f.json", cwd=constructed)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((constructed / "f.json").read_text())
    assert [p["n"] for p in doc["points"]] == [64, 256, 1024] and "needs 4" in doc["abstained"]
    row = doc["at"][0]
    assert (row["n"], row["estimate"], row["ci"], row["reason"]) == (4096, None, None, doc["abstained"]) and doc["suggest"]["n"] == 2048
    assert doc["schema_version"] == 1 and doc["points_from"] == "one configuration at each size"
    assert "no forecast" in proc.stdout
    bad = run_cli("forecast", "picked", "--metric", "extraction.nope", cwd=constructed)
    assert bad.returncode == 2 and "extraction.field_f1" in bad.stderr and "Traceback" not in bad.stderr


def test_a_study_chooses_each_size_on_half_the_items_and_fits_the_other_half(constructed):
    """Two configurations per size: the points must not be the winners' scores on their own items."""
    import optuna

    from harness.store import reading
    from harness.store.study import storage_for

    study = optuna.load_study(study_name="picked", storage=storage_for("picked"))
    root = constructed / "runs/picked"
    rng = np.random.default_rng(1)
    for k, n in enumerate((64, 256, 1024)):
        add_candidate(study, root, f"trial-{4 + k}", {"lora_r": 16, "n_samples": n, "learning_rate": 1e-3}, (rng.random(100) < 0.5) * 1.0,
                      0.5)
    data = reading.load_study("picked")
    items, note = study_items(data, "extraction.field_f1")
    assert "chosen on half of the items" in note and 30 < items.item_id.nunique() < 70
    assert items.groupby("n_samples").run.nunique().eq(1).all()
    grouped, note = study_items(data, "extraction.field_f1", group="lora_r=16")
    assert grouped.item_id.nunique() == 100 and "lora_r=16" in note
    # Through the CLI: --group fits the named configuration on every item, nothing chosen.
    proc = run_cli("forecast", "picked", "--metric", "extraction.field_f1", "--group", "lora_r=16", "--json", "g.json", cwd=constructed)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((constructed / "g.json").read_text())
    assert doc["points_from"] == "the trials with lora_r=16 at each size" and {p["n_items"] for p in doc["points"]} == {100}
    assert [p["mean"] for p in doc["points"]] == pytest.approx(
        grouped.groupby("n_samples").score.mean().sort_index().tolist())
    for bad in ("lora_r=3", "nope=1"):
        proc = run_cli("forecast", "picked", "--metric", "extraction.field_f1", "--group", bad, cwd=constructed)
        assert proc.returncode == 2 and f"--group {bad}" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("args", "message"), [(["--target", "1.5"], "--target 1.5"), (["--at", "0"], "--at 0")])
def test_harness_forecast_refuses_bad_arguments(tmp_path, args, message):
    path = tmp_path / "curve.csv"
    curve_of({n: power(n) for n in NS}, items=50).to_csv(path, index=False)
    proc = run_cli("forecast", "--items", str(path), "--metric", "t.acc", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_adaptive_sizes_start_with_a_ladder_then_follow_the_forecast():
    from harness.config import AdaptiveSizes
    from harness.forecast.planning import next_size

    spec = AdaptiveSizes(target="t.acc=0.8", min=16, max=4096)
    assert next_size(None, spec, "t.acc").n == 16
    assert next_size(Curve.from_items(curve_of({16: 0.3, 32: 0.4, 64: 0.5})), spec, "t.acc").n == 128
    late = next_size(Curve.from_items(curve_of({16: 0.03, 32: 0.02, 64: 0.04, 128: 0.6})), spec, "t.acc", n_boot=100)
    assert late.n == 256 and "no forecast yet" in late.why and "past the onset" in late.why
    step = next_size(Curve.from_items(curve_of({n: power(n) for n in NS}, items=400)), spec, "t.acc", n_boot=200)
    assert 256 < step.n <= 4096 and "narrows the forecast most for its cost" in step.why, step
    done = next_size(Curve.from_items(curve_of({n: power(n) for n in NS})), AdaptiveSizes(target="t.acc=0.1", max=4096), "t.acc",
                     n_boot=100)
    assert done.n is None and "already reached at the smallest size" in done.why
    capped = next_size(Curve.from_items(curve_of({16: 0.03, 32: 0.02, 64: 0.04, 128: 0.6})), AdaptiveSizes(max=128), "t.acc",
                       n_boot=100)
    assert capped.n is None and "max 128 is trained" in capped.why


def test_a_perfect_score_everywhere_still_has_an_interval_and_a_far_target_no_number():
    perfect = forecast(Curve.from_items(curve_of({n: 1.01 for n in NS[:4]}, items=50)), "t.acc", at=[1024], n_boot=200)
    assert perfect.at[0]["one_sided"] and 0.95 < perfect.at[0]["ci"][0] < 1.0 and all(p["ci"][0] < 1.0 for p in perfect.points)
    slow = {16: 0.30, 32: 0.25, 64: 0.45, 128: 0.40, 256: 0.60, 512: 0.55}  # noisy, not monotone, one run per size
    f = forecast(Curve.from_items(curve_of(slow, items=100)), "t.acc", target=0.8, n_boot=200)
    assert f.target["n"]["estimate"] is None, f.target  # no number to plan on: beyond 100x the data, or not reached at all
    assert "not within 100x the largest size" in (f.target["reason"] or "") or f.target["p_reachable"] < 0.5, f.target
