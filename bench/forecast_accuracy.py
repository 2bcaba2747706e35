"""W5 (issues 18, 29): does the learning-curve forecast predict a size it has not seen, for the user's
next training run?

Trains ONE configuration of SmolLM2 on the extraction task at every size with several seeds (a grid
sweep with `replicates:`), scores each on the same extraction items and keeps every item's scores in
`results/forecast_accuracy-items.csv` (so the fit can be re-run and checked without training). Then, for
each metric, fits the curve on the sizes up to a quarter of the largest and compares the forecast for
each larger size with the mean of its seeds.

usage: python bench/forecast_accuracy.py [--n 16,24,32,48,64,96,128,256,512,1024] [--seeds 3] [--items 50]
       python bench/forecast_accuracy.py --add --n 256,1024   (train these sizes, keep the saved others)
       python bench/forecast_accuracy.py --refit      (the fit only, from the saved items)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
ITEMS_CSV = HERE / "results" / "forecast_accuracy-items.csv"
METRICS = ("extraction.field_f1", "extraction.exact_match")


def gather(ns: list[int], seeds: int, items: int, lr: str, add: bool = False) -> float:
    """Run the sweep and save every run's items (n_samples, run, metric, item_id, score); its wall time.
    add: keep the saved items of the other sizes (the sweep trains only `ns`; its runs are named add-trial-N)."""
    from common import extraction_grid

    from harness.store import reading

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        grid = extraction_grid("w5", [lr], ns, items, max_seq_len=192, batch_size=8)
        (tmp / "w5.yaml").write_text(grid + f"replicates: {{seeds: {seeds}, top: {len(ns)}}}\n")
        t0 = time.perf_counter()
        proc = subprocess.run([str(REPO / ".venv/bin/harness"), "sweep", "w5.yaml"], cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"harness sweep w5.yaml failed:\n{proc.stderr[-3000:]}")
        wall = time.perf_counter() - t0
        here = os.getcwd()
        os.chdir(tmp)  # the store reads runs/ relative to the working directory
        try:
            data = reading.load_study("w5")
        finally:
            os.chdir(here)
    trials = data.trials[~data.trials.is_base]
    n_of = dict(zip(trials.candidate, trials.n_samples.astype(int), strict=True))
    long = data.metrics[data.metrics.candidate.isin(n_of)]
    frame = pd.DataFrame({"n_samples": long.candidate.map(n_of), "run": long.candidate, "metric": long.suite + "." + long.metric,
                          "item_id": long.item_id, "score": long.value.astype(float)})
    if add:  # the same configuration and items: the saved sizes stand, the new runs keep names of their own
        frame["run"] = "add-" + frame.run
        saved = pd.read_csv(ITEMS_CSV, dtype={"item_id": str, "run": str})
        frame = pd.concat([saved[~saved.n_samples.isin(ns)], frame], ignore_index=True)
    ITEMS_CSV.parent.mkdir(parents=True, exist_ok=True)
    frame.sort_values(["metric", "n_samples", "run", "item_id"]).to_csv(ITEMS_CSV, index=False)
    return wall


def report(notes: list[str]) -> None:
    from common import write_table

    from harness.forecast import Curve, forecast

    frame = pd.read_csv(ITEMS_CSV, dtype={"item_id": str, "run": str})
    rows = []
    for metric in METRICS:
        items = frame[frame.metric == metric]
        largest = items.n_samples.max()
        fit_on = items[items.n_samples <= largest / 4]
        unseen = sorted(int(n) for n in items.n_samples.unique() if n > largest / 4)  # each forecast beside its own seeds
        predicted = forecast(Curve.from_items(fit_on), metric, at=unseen)
        measured = forecast(Curve.from_items(items), metric, at=[])
        # the same fit from each size's first run alone: what a sweep without replicates would have had
        first = fit_on[fit_on.run == fit_on.groupby("n_samples").run.transform(lambda r: min(r, key=lambda c: int(c.split("-")[-1])))]
        single = forecast(Curve.from_items(first), metric, at=unseen)
        for point in measured.points:
            row = [metric if point is measured.points[0] else "", point["n"], point["runs"],
                   f"{point['mean']:.3f} [{point['ci'][0]:.3f}, {point['ci'][1]:.3f}]"]
            if point["n"] <= largest / 4:
                rows.append([*row, "fitted on", ""])
                continue
            for label, fitted in ((f"{point['runs']} seeds per size", predicted), ("the first seed per size", single)):
                at = next(a for a in fitted.at if a["n"] == point["n"])
                rows.append([*row, f"from {label}: {_prediction(at)}", _verdict(at, point["mean"])])
                row = ["", "", "", ""]
        weights = ", ".join(f"{k} {v:.2f}" for k, v in predicted.weights.items())
        notes = [*notes, f"fitted on n <= {largest / 4:g}: {predicted.sentence()} (family weights: {weights}; run-to-run sd "
                         f"{predicted.noise['run_sd']:.3f} from {predicted.noise['source']})",
                 *[f"{metric}, the fit's warning: {w}" for w in predicted.warnings]]
    write_table("forecast_accuracy", "W5: forecast of the largest size from the sizes up to a quarter of it (SmolLM2, extraction)",
                ["metric", "n_samples", "runs (seeds)", "measured: mean of the runs [95% CI, items and seeds]", "forecast for the next run",
                 "verdict"], rows, notes)


def _prediction(at: dict) -> str:
    if at["estimate"] is None:
        return f"**abstained: {at['reason']}**"
    lo, hi = at["ci"]
    return f"**{at['estimate']:.3f} [{f'at least {lo:.3f}, one-sided' if at['one_sided'] else f'{lo:.3f}, {hi:.3f}'}]**"


def _verdict(at: dict, measured: float) -> str:
    if at["estimate"] is None:
        return "no interval (honest abstention)"
    return "seed mean inside the 95% interval" if at["ci"][0] <= measured <= at["ci"][1] else "OUTSIDE the 95% interval"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="16,24,32,48,64,96,128,256,512,1024")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--items", type=int, default=50)
    p.add_argument("--lr", default="2.0e-3")
    p.add_argument("--refit", action="store_true", help="fit and report from the saved items only")
    p.add_argument("--add", action="store_true", help="train only the sizes --n gives and keep the saved items of the others")
    p.add_argument("--note", action="append", default=[], help="--refit: a line for the table's header (e.g. the sweep's time)")
    a = p.parse_args()
    notes = [f"one configuration: lora_r 16, learning_rate {a.lr}, 1 epoch, max_seq_len 192, batch 8; hf backend; "
             f"items from {ITEMS_CSV.relative_to(REPO)}", *a.note]
    if not a.refit:
        wall = gather([int(x) for x in a.n.split(",")], a.seeds, a.items, a.lr, a.add)
        notes.append(f"sweep wall time {wall:.0f} s ({a.seeds} seeds per size, {a.items} items)")
    report(notes)


if __name__ == "__main__":
    main()
