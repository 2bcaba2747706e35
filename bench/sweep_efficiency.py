"""W3 (issue 7): multi-fidelity (successive halving over n_samples) against the full grid.

Same space, same data, same suite, run one after the other in one process tree:
  grid   every (learning_rate, n_samples) pair: GridSampler, |lr| x |n| trials
  sh     the same learning rates, each started on the fewest samples and promoted by Optuna's
         SuccessiveHalvingPruner (eta=3) to more: |lr| trials
Both score trial 0 (the base) first. Measured from the studies' own timestamps: wall time until
the best complete trial so far is within 1 point (0.01) of the grid's best; target <= 1/3 of the grid's.
usage: python bench/sweep_efficiency.py [--n 8,24,72] [--lr 3e-4,1e-3,3e-3] [--items 10] [--table NAME]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

from harness.store import paths

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))


def run(tmp: Path, study: str, lrs: list[str], ns: list[int], items: int, multi_fidelity: bool) -> optuna.Study:
    from common import extraction_grid

    # Multi-fidelity: one trial per learning rate, each climbing the n_samples rungs.
    text = extraction_grid(study, lrs, ns, items, trials=len(lrs) if multi_fidelity else None)
    if multi_fidelity:
        text += f"multi_fidelity: {{enabled: true, min_samples: {ns[0]}, reduction_factor: 3}}\n"
    (tmp / f"{study}.yaml").write_text(text)
    proc = subprocess.run([str(REPO / ".venv/bin/harness"), "sweep", f"{study}.yaml"], cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"harness sweep {study}.yaml failed:\n{proc.stderr[-3000:]}")
    return optuna.load_study(study_name=study, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp / paths.journal_file(study)))))


def curve(study: optuna.Study) -> tuple[float, list[tuple[float, float]]]:
    """(total seconds, [(seconds since the study started, best complete objective so far)])."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.datetime_start)
    start = trials[0].datetime_start
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    best, points = float("-inf"), []
    for t in sorted((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.params), key=lambda t: t.datetime_complete):
        best = max(best, t.values[0])
        points.append(((t.datetime_complete - start).total_seconds(), best))
    return (end - start).total_seconds(), points


def time_to(points: list[tuple[float, float]], target: float) -> float | None:
    return next((s for s, best in points if best >= target - 0.01), None)


def main() -> None:
    from common import write_table

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="8,24,72")
    p.add_argument("--lr", default="3e-4,1e-3,3e-3")
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--table", default="sweep_efficiency", help="name of the table in bench/results/")
    a = p.parse_args()
    ns, lrs = [int(x) for x in a.n.split(",")], a.lr.split(",")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        grid_total, grid = curve(run(tmp, "grid", lrs, ns, a.items, False))
        sh_study = run(tmp, "sh", lrs, ns, a.items, True)
        sh_total, sh = curve(sh_study)
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in sh_study.get_trials(deepcopy=False))  # before tmp goes
    grid_best = max(b for _, b in grid)
    t_grid, t_sh = time_to(grid, grid_best), time_to(sh, grid_best)
    # "The grid's time": what a grid costs before you know its best, i.e. its total; the ratio to the
    # grid's own time-to-target (it may hit its best early by luck of order) is shown too.
    rows = [["grid", len(lrs) * len(ns), f"{grid_total:.0f}", f"{grid_best:.4f}", f"{t_grid:.0f}", "1.00", f"{t_grid / grid_total:.2f}", ""],
            ["successive halving", f"{len(lrs)} ({pruned} pruned)", f"{sh_total:.0f}", f"{max(b for _, b in sh):.4f}",
             f"{t_sh:.0f}" if t_sh else "never", f"{t_sh / t_grid:.2f}" if t_sh else "-", f"{t_sh / grid_total:.2f}" if t_sh else "-",
             "met" if t_sh and t_sh <= grid_total / 3 else "MISSED (target <= 0.33 of the grid's time)"]]
    write_table(a.table, "W3: sweep efficiency, successive halving over n_samples vs the full grid (SmolLM2)",
                ["sweep", "trials", "total s", "best objective", "s until within 0.01 of the grid's best", "vs grid's time-to-target",
                 "vs grid's total time", "verdict"],
                rows, [f"space: learning_rate {lrs} x n_samples {ns} (lora_r 16); extraction suite, {a.items} dev items; hf backend",
                       "times from the studies' trial timestamps, base trial 0 included in both"])


if __name__ == "__main__":
    main()
