"""Learning-curve forecasts: calibrated on curves whose truth is known, and their refusals."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from harness.errors import UserError
from harness.select.forecast import Curve, forecast

A, B, C = 0.9, 1.5, 0.4
NS = [16, 32, 64, 128, 256]


def truth(n):
    return A - B * n ** -C


def draw(seed: int, items: int = 400) -> pd.DataFrame:
    """Each item has a difficulty u ~ U(0, 1) and is solved at n once the true score passes it, so an
    item solved at n stays solved at every larger n (items solved monotonically in n)."""
    u = np.random.default_rng(seed).random(items)
    return pd.DataFrame([{"n_samples": n, "item_id": f"i{i}", "score": float(u[i] < truth(n))} for n in NS for i in range(items)])


def test_intervals_cover_the_truth_beyond_the_data():
    far, target = 4 * NS[-1], truth(1.5 * NS[-1])  # the score at 4x the largest n; a target just beyond the data
    needed = 1.5 * NS[-1]
    covered_score = covered_n = 0
    widths = []
    draws = 24
    for seed in range(draws):
        f = forecast(Curve.from_items(draw(seed)), "t.acc", target=target, at=[far], n_boot=400, seed=seed)
        lo, hi = f.at[0]["ci"]
        covered_score += lo <= truth(far) <= hi
        widths.append(hi - lo)
        n_lo, n_hi = f.target["n"]["ci"]
        covered_n += n_lo <= needed and (n_hi is None or needed <= n_hi)
    assert covered_score / draws >= 0.85, covered_score
    assert covered_n / draws >= 0.85, covered_n
    assert np.median(widths) <= 0.15, np.median(widths)


def test_the_fit_recovers_the_curve_and_reports_every_point():
    f = forecast(Curve.from_items(draw(0, items=4000)), "t.acc", target=0.8, at=[1024], n_boot=200)
    assert f.model == "pow3" and [p["n"] for p in f.points] == NS and all(p["n_items"] == 4000 for p in f.points)
    assert abs(f.at[0]["estimate"] - truth(1024)) < 0.03
    assert f.plateau["ci"][0] <= A + 0.05 and f.target["p_reachable"] > 0.5
    assert "samples (95% CI" in f.sentence() and "plateau" in f.sentence()


def test_an_unreachable_target_has_no_upper_bound():
    f = forecast(Curve.from_items(draw(1)), "t.acc", target=0.99, n_boot=200)
    assert f.target["n"]["ci"][1] is None and f.target["p_reachable"] < 0.5


def test_a_curve_that_drops_is_named_in_a_warning():
    frame = draw(2)
    frame.loc[frame.n_samples == 128, "score"] = 0.0
    f = forecast(Curve.from_items(frame), "t.acc", n_boot=100)
    assert any("n=64" in w and "n=128" in w for w in f.warnings), f.warnings


def test_a_late_onset_of_learning_is_named_and_a_power_law_curve_is_not():
    """W5's measured shape (F1 0.03, 0.00, 0.79, 0.97 at n = 16, 32, 64, 128) and the calibration curve."""
    rng = np.random.default_rng(7)
    u = rng.random(50)
    means = {16: 0.03, 32: 0.0, 64: 0.79, 128: 0.97}
    late = pd.DataFrame([{"n_samples": n, "item_id": f"i{i}", "score": float(u[i] < m)} for n, m in means.items() for i in range(50)])
    warnings = forecast(Curve.from_items(late), "t.acc", n_boot=100).warnings
    assert any(w.startswith("S-shaped") and "n=32 to n=64" in w for w in warnings), warnings
    assert not any(w.startswith("S-shaped") for w in forecast(Curve.from_items(draw(8)), "t.acc", n_boot=100).warnings)


def test_repeated_runs_at_one_size_widen_the_intervals():
    one = draw(3)
    noisy = pd.concat([one.assign(run=0), one.assign(run=1, score=np.where(one.n_samples == 64, 1 - one.score, one.score))])
    narrow = forecast(Curve.from_items(one), "t.acc", at=[1024], n_boot=300).points[2]["ci"]
    wide = forecast(Curve.from_items(noisy), "t.acc", at=[1024], n_boot=300).points[2]["ci"]
    assert wide[1] - wide[0] > 2 * (narrow[1] - narrow[0])


@pytest.mark.parametrize(("ns", "target", "message"), [([16, 64], None, "at least 3"), (NS, 1.5, "within [0, 1]")])
def test_too_few_sizes_or_a_target_outside_0_1_is_bad_input(ns, target, message):
    frame = draw(4)
    with pytest.raises(UserError, match=re.escape(message)):
        forecast(Curve.from_items(frame[frame.n_samples.isin(ns)]), "t.acc", target=target)


def test_harness_forecast_on_an_items_file_writes_the_json_contract(tmp_path):
    path = tmp_path / "curve.csv"
    draw(5).to_csv(path, index=False)
    out = tmp_path / "f.json"
    proc = run_cli("forecast", "--items", str(path), "--metric", "t.acc", "--target", "0.76", "--at", "1024", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert set(doc) >= {"metric", "model", "points", "plateau", "at", "target"}
    assert [p["n"] for p in doc["points"]] == NS and all(len(p["ci"]) == 2 and p["n_items"] == 400 for p in doc["points"])
    assert doc["at"][0]["n"] == 1024 and doc["at"][0]["ci"][0] <= doc["at"][0]["estimate"] <= doc["at"][0]["ci"][1]
    assert doc["target"]["value"] == 0.76 and 0 <= doc["target"]["p_reachable"] <= 1 and len(doc["target"]["n"]["ci"]) == 2
    assert "to reach t.acc 0.76" in proc.stdout and "plateau" in proc.stdout


def test_harness_forecast_on_a_study_uses_the_best_trial_at_each_size(constructed):
    proc = run_cli("forecast", "picked", "--metric", "extraction.field_f1", "--json", "f.json", cwd=constructed)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((constructed / "f.json").read_text())
    assert [p["n"] for p in doc["points"]] == [64, 256, 1024]
    bad = run_cli("forecast", "picked", "--metric", "extraction.nope", cwd=constructed)
    assert bad.returncode == 2 and "extraction.field_f1" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("args", "message"), [(["--target", "1.5"], "--target 1.5"), (["--at", "0"], "--at 0")])
def test_harness_forecast_refuses_bad_arguments(tmp_path, args, message):
    path = tmp_path / "curve.csv"
    draw(6).to_csv(path, index=False)
    proc = run_cli("forecast", "--items", str(path), "--metric", "t.acc", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
