"""The model-based samplers a sweep file can name (tpe, gp, cmaes) move toward a known optimum once they
have seen some trials: real Optuna, a known objective over the sweep's space (no model; seconds each)."""

import pytest
from known_optimum import distance, search


@pytest.mark.parametrize("name", ["tpe", "gp", "cmaes"])
def test_model_based_samplers_learn_where_the_optimum_is(name):
    asked = search(name, seed=0, trials=24)
    early, late = (sum(map(distance, part)) / len(part) for part in (asked[:8], asked[-8:]))
    assert late < early, (name, early, late)
