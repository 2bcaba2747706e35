"""W5 (issue 18): does the learning-curve forecast predict a size it has not seen?

Trains ONE configuration of SmolLM2 on the extraction task at several sizes (a grid sweep, the base
model as trial 0), scores each on the same extraction items, fits the curve from the points at
n <= --fit-max only, and compares its prediction for the largest size with what that size measured.
usage: python bench/forecast_accuracy.py [--n 16,32,64,128,512] [--fit-max 128] [--items 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

def main() -> None:
    from common import extraction_grid, write_table

    from harness.select.forecast import Curve, forecast, study_items
    from harness.store import reading

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="16,32,64,128,512")
    p.add_argument("--fit-max", type=int, default=128)
    p.add_argument("--items", type=int, default=50)
    p.add_argument("--lr", default="2.0e-3")
    a = p.parse_args()
    ns = [int(x) for x in a.n.split(",")]
    held_out = max(ns)
    metric = "extraction.field_f1"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "w5.yaml").write_text(extraction_grid("w5", [a.lr], ns, a.items, max_seq_len=192, batch_size=8))
        t0 = time.perf_counter()
        proc = subprocess.run([str(REPO / ".venv/bin/harness"), "sweep", "w5.yaml"], cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"harness sweep w5.yaml failed:\n{proc.stderr[-3000:]}")
        sweep_s = time.perf_counter() - t0
        here = os.getcwd()
        os.chdir(tmp)  # the store reads runs/ relative to the working directory
        try:
            items = study_items(reading.load_study("w5"), metric)
        finally:
            os.chdir(here)
    fit_on = items[items.n_samples <= a.fit_max]
    predicted = forecast(Curve.from_items(fit_on), metric, at=[held_out])
    measured = forecast(Curve.from_items(items), metric).points[-1]  # the held-out size, with its bootstrap CI
    pred = predicted.at[0]
    inside = pred["ci"][0] <= measured["mean"] <= pred["ci"][1]
    rows = [[f"{p['n']}", f"{p['mean']:.3f} [{p['ci'][0]:.3f}, {p['ci'][1]:.3f}]", "fitted on", ""] for p in predicted.points]
    rows.append([f"**{held_out}**", f"{measured['mean']:.3f} [{measured['ci'][0]:.3f}, {measured['ci'][1]:.3f}]",
                 f"**predicted {pred['estimate']:.3f} [{pred['ci'][0]:.3f}, {pred['ci'][1]:.3f}]**",
                 "measured inside the prediction's 95% CI" if inside else "OUTSIDE the prediction's 95% CI"])
    write_table("forecast_accuracy", f"W5: learning-curve forecast of n={held_out} from n <= {a.fit_max} (SmolLM2, extraction)",
                ["n_samples", f"measured {metric} [95% CI]", "forecast", "verdict"], rows,
                [f"one configuration: lora_r 16, learning_rate {a.lr}, 1 epoch; {a.items} extraction items; hf backend",
                 f"fit: {predicted.model}, plateau {predicted.plateau['estimate']:.3f} [{predicted.plateau['ci'][0]:.3f}, "
                 f"{predicted.plateau['ci'][1]:.3f}]; sweep wall time {sweep_s:.0f} s",
                 *[f"the fit's warning: {w}" for w in predicted.warnings]])


if __name__ == "__main__":
    main()
