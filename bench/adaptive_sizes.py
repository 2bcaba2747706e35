"""W7 (issue 29): trainings and minutes to a forecast of stated precision, the sweep choosing its
training sizes (`n_samples: {adaptive: ...}`) against a geometric grid of sizes.

Both sweeps train ONE configuration of SmolLM2 on the extraction task and score 50 extraction items.
The grid trains every size of 16, 32, ... `--max`; the adaptive sweep trains 16, 32, 64, 128 and then
the sizes its forecast asks for, until the samples `--target` needs are known within `--ratio`. For
the grid, the table also says after which size (in increasing order) its forecast first met that
precision: a grid user does not know when to stop, so the grid's cost is all of it.

usage: python bench/adaptive_sizes.py [--target extraction.field_f1=0.9] [--max 512] [--ratio 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

SWEEP = """study: {study}
base: default
train: {{data: {repo}/suites/extraction/train.jsonl, epochs: 1, max_seq_len: 192, batch_size: 8, dtype: auto}}
space:
  lora_r: {{type: categorical, choices: [16]}}
  learning_rate: {{type: categorical, choices: [{lr}]}}
  n_samples: {sizes}
suites:
  - {{suite: {repo}/suites/extraction/suite.yaml, weight: 1.0, limit: {items}}}
sampler: {{name: {sampler}, seed: 0}}
budget: {{n_trials: {trials}}}
backend: hf
trackers: [none]
"""


def run_sweep(tmp: Path, study: str, sizes: str, sampler: str, trials: int, a) -> tuple[float, object]:
    """The sweep run (or resumed, in a kept --workdir) and read; its minutes from first start to last end."""
    from harness.store import reading

    (tmp / f"{study}.yaml").write_text(SWEEP.format(study=study, repo=REPO, lr=float(a.lr), sizes=sizes, items=a.items,
                                                    sampler=sampler, trials=trials))
    proc = subprocess.run([str(REPO / ".venv/bin/harness"), "sweep", f"{study}.yaml"], cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"harness sweep {study}.yaml failed:\n{proc.stderr[-3000:]}")
    here = os.getcwd()
    os.chdir(tmp)
    try:  # the study's journal is read relative to the working directory
        data = reading.load_study(study)
        trials = data.study.get_trials(deepcopy=False)
        data.meta["adaptive_stopped"] = data.study.user_attrs.get("adaptive_stopped", "budget spent")
    finally:
        os.chdir(here)
    span = max(t.datetime_complete for t in trials if t.datetime_complete) - min(t.datetime_start for t in trials if t.datetime_start)
    return span.total_seconds(), data


def main() -> None:
    from common import write_table

    from harness.config import AdaptiveSizes
    from harness.forecast import Curve, forecast
    from harness.forecast.inputs import study_items
    from harness.forecast.planning import answered

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="extraction.field_f1=0.9")
    p.add_argument("--max", type=int, default=512)
    p.add_argument("--ratio", type=float, default=2.0)
    p.add_argument("--items", type=int, default=50)
    p.add_argument("--lr", default="2.0e-3")
    p.add_argument("--workdir", type=Path, default=None, help="keep the sweeps here (a re-run resumes them); default: a temp dir")
    a = p.parse_args()
    spec = AdaptiveSizes(target=a.target, min=16, max=a.max, ratio=a.ratio)
    metric, value = spec.goal
    grid = [16 * 2**k for k in range(20) if 16 * 2**k <= a.max]
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = a.workdir or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        runs = {"geometric grid": run_sweep(tmp, "w7grid", "{type: categorical, choices: [" + ", ".join(map(str, grid)) + "]}",
                                            "grid", len(grid), a),
                "adaptive": run_sweep(tmp, "w7adaptive", f"{{adaptive: {{target: {a.target}, min: 16, max: {a.max}, "
                                                         f"ratio: {a.ratio}}}}}", "random", 12, a)}
    for system, (wall, data) in runs.items():
        trials = data.trials[~data.trials.is_base].sort_values("number")
        frame, _ = study_items(data, metric)
        final = forecast(Curve.from_items(frame), metric, value)
        n = final.target["n"]
        high = "open" if n["ci"] is None or n["ci"][1] is None else f"{n['ci'][1]:,.0f}"
        answer = final.target.get("reason") or final.abstained or f"{n['estimate']:,.0f} [{n['ci'][0]:,.0f}, {high}]"
        met = ""
        if system == "geometric grid":  # after which size its forecast first met the precision
            for k in range(4, len(grid) + 1):
                partial = forecast(Curve.from_items(frame[frame.n_samples <= grid[k - 1]]), metric, value)
                if not partial.abstained and answered(partial, spec):
                    met = f"met after n = {grid[k - 1]} ({k} trainings, {sum(grid[:k])} samples)"
                    break
            met = met or "not met"
        else:
            met = data.meta["adaptive_stopped"]
        rows.append([system, len(trials), int(trials.n_samples.sum()), ", ".join(str(int(x)) for x in trials.n_samples),
                     f"{trials.train_s.sum() / 60:.1f}", f"{wall / 60:.1f}", answer, met])
    write_table("adaptive_sizes", f"W7: trainings to the samples {a.target} needs within x{a.ratio:g}, adaptive sizes vs a grid",
                ["sizes", "trainings", "training samples", "sizes trained (in order)", "training minutes", "sweep minutes",
                 "samples needed [95% CI] at the end", "precision"], rows,
                [f"one configuration: lora_r 16, learning_rate {a.lr}, 1 epoch; {a.items} extraction items; hf backend; max {a.max}"])


if __name__ == "__main__":
    main()
