import numpy as np
import pandas as pd

from harness.score.metrics import json_exact_match, json_field_f1, rouge_l
from harness.stats import mean_ci, paired_difference


def test_mean_ci_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = mean_ci(rng.integers(0, 2, 50)), mean_ci(rng.integers(0, 2, 2000))
    for r in (small, large):
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
    assert (large["ci_high"] - large["ci_low"]) < (small["ci_high"] - small["ci_low"]) / 3
    x = np.array([0, 1] * 50, dtype=float)
    assert abs(mean_ci(x)["stderr"] - x.std(ddof=1) / 10) < 1e-12


def test_paired_difference_separates_real_from_null_effects():
    rng = np.random.default_rng(1)
    a = pd.Series(rng.integers(0, 2, 400).astype(float))
    better = a.copy()
    better[rng.choice(400, 60, replace=False)] = 1.0
    real = paired_difference(better, a)
    assert real["diff"] > 0 and real["p_value"] < 0.01 and real["ci_low"] > 0
    null = paired_difference(a, a.sample(frac=1, random_state=3).set_axis(a.index))
    assert null["p_value"] > 0.05


def test_json_metrics_give_partial_credit():
    ref = '{"type": "invoice", "number": "INV-1", "total": 12.5}'
    assert json_field_f1('{"type": "invoice", "number": "INV-1", "total": 12.5}', ref) == 1.0
    assert json_exact_match('Sure: {"total": 12.5, "number": "INV-1", "type": "Invoice"}', ref) == 1.0
    assert abs(json_field_f1('{"type": "invoice", "number": "INV-2"}', ref) - 0.4) < 1e-9
    assert json_field_f1("no json here", ref) == 0.0
    assert rouge_l("a b c d", "a b x d") == 0.75
