"""The learning-curve forecast's acceptance thresholds (issue 29), by seeded simulation with a known
truth: for each family of true curves, pooled over 4 and 6 sizes, 50 and 400 0/1 items, 200 fractional
items and training-seed noise with 3 runs per size, the 95% intervals for a next run at 4x and 16x the
largest size cover the truth in at least 88% of the draws that forecast; where every size is past the
onset of learning, it abstains in at most 20% of draws; its median absolute error is at most that of
repeating the last measured score. bench/forecast_calibration.py has the full table (more draws, more
shapes, 3 to 6 sizes); these draws are fewer, so this layer takes about two minutes."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import forecast_calibration as sim  # noqa: E402 - bench/ is not a package on the path

DRAWS = 12
FAMILIES = {
    "power law": True,  # every size is past the onset: abstention is held to 20% here
    "late onset (logistic in log n, onset ~96)": False,
    "saturating near 1": True,
    "flat": False,
}


def settings(shape: str) -> list[sim.Setting]:
    return [sim.Setting(shape, sizes, items, fractional, seed_sd, runs)
            for sizes in (4, 6)
            for items, fractional, seed_sd, runs in ((50, False, 0.0, 1), (400, False, 0.0, 1), (200, True, 0.0, 1), (200, False, 0.15, 3))]


@pytest.mark.parametrize("shape", list(FAMILIES))
def test_the_forecast_holds_its_level_on_every_family(shape):
    made = abstained = total = 0
    covered = {4: 0.0, 16: 0.0}
    errors, baseline = [], []
    for k, setting in enumerate(settings(shape)):
        r = sim.evaluate(setting, DRAWS, seed=100 + k, n_boot=300)
        total += r["draws"]
        abstained += round(r["abstained"] * r["draws"])
        made += r["made"]
        if r["made"]:
            for mult in (4, 16):
                covered[mult] += r[f"cover{mult}"] * r["made"]
            errors += r["errors"]
            baseline += r["baseline"]
    assert made >= total / 2, f"{shape}: forecast in only {made} of {total} draws"
    for mult in (4, 16):
        assert covered[mult] / made >= 0.88, f"{shape}: covers at {mult}x in {covered[mult] / made:.0%} of {made} draws"
    if FAMILIES[shape]:
        assert abstained / total <= 0.20, f"{shape}: abstained in {abstained} of {total} draws"
    assert np.median(errors) <= np.median(baseline), f"{shape}: median error {np.median(errors):.3f} > last measured {np.median(baseline):.3f}"
