"""Issue 8: `harness report` on a 50-trial study with 500 items per suite per trial must take < 10 s.

Builds a real Optuna study (journal storage, the layout `harness sweep` writes: trial 0 = base, one
items.parquet per trial) with synthetic per-item scores for two suites, then times the real
`harness report` CLI end to end (process start, study load, leaderboard, paired tests, pick, plots,
HTML/MD/CSV/parquet) and `harness leaderboard --format csv`, median of 3 runs.
usage: python bench/report_speed.py [--trials 50] [--items 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.storages.journal import JournalFileBackend, JournalStorage

from harness.store import paths

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import write_table  # noqa: E402

SUITES = {"extraction": "field_f1", "mmlu": "acc"}


def items_frame(cand: str, quality: float, n: int, rng) -> pd.DataFrame:
    rows = []
    for suite, metric in SUITES.items():
        values = (rng.random(n) < quality).astype(float) if metric == "acc" else np.clip(rng.normal(quality, 0.1, n), 0, 1)
        for i, v in enumerate(values):
            rows.append({"candidate": cand, "candidate_hash": f"h-{cand}", "suite": suite, "suite_version": "v1",
                         "item_id": f"{suite}-{i}", "prediction": "", "reference": "", "score": float(v),
                         "metrics": json.dumps({metric: float(v)}), "tokens": 40, "extra": "{}", "backend": "vllm", "dtype": "float32"})
    return pd.DataFrame(rows)


def build_study(root: Path, n_trials: int, n_items: int) -> None:
    rng = np.random.default_rng(0)
    runs = root / paths.study_dir("bench")
    runs.mkdir(parents=True)
    study = optuna.create_study(study_name="bench", storage=JournalStorage(JournalFileBackend(str(root / paths.journal_file("bench")))))
    study.set_user_attr("objective", {"weights": {"extraction": 1.0, "mmlu": 0.5}, "headline": SUITES, "directions": ["maximize"]})
    dists = {"lora_r": optuna.distributions.CategoricalDistribution([4, 8, 16, 32]),
             "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True),
             "n_samples": optuna.distributions.CategoricalDistribution([32, 64, 128, 256, 512])}
    for number in range(n_trials + 1):
        cand = "base" if number == 0 else f"trial-{number}"
        params = {} if number == 0 else {k: d.to_external_repr(rng.integers(len(d.choices))) if hasattr(d, "choices")
                                         else float(np.exp(rng.uniform(np.log(d.low), np.log(d.high)))) for k, d in dists.items()}
        folder = runs / cand
        folder.mkdir()
        items = items_frame(cand, 0.3 if number == 0 else rng.uniform(0.5, 0.9), n_items, rng)
        items.to_parquet(folder / "items.parquet", index=False)
        means = items.groupby("suite").score.mean()
        attrs = {"dir": str(folder), "adapter": None if number == 0 else str(folder / "adapter"), "train_s": 60.0 * (number > 0),
                 "tokens_seen": 1000 * number, "score_s": 10.0}
        if number == 0:
            attrs["candidate"] = "base"
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                  value=float(means["extraction"] + 0.5 * means["mmlu"]), user_attrs=attrs))


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    harness = str(HERE.parent / ".venv/bin/harness")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_study(root, args.trials, args.items)
        report = [timed([harness, "report", "bench", "--out", f"reports/r{i}"], root) for i in range(args.repeats)]
        board = [timed([harness, "leaderboard", "bench", "--format", "csv"], root) for _ in range(args.repeats)]
        written = sorted(p.name for p in (root / "reports/r0").iterdir())
        size_mb = (root / "reports/r0/index.html").stat().st_size / 2**20
    rows = [["harness report", f"{statistics.median(report):.2f}", "< 10 s", "met" if statistics.median(report) < 10 else "MISSED"],
            ["harness leaderboard --format csv", f"{statistics.median(board):.2f}", "", ""]]
    write_table("report_speed", f"Issue 8: reporting a {args.trials}-trial study, {args.items} items per suite per trial",
                ["command", "median seconds (3 runs, whole process)", "target", "verdict"], rows,
                [f"2 suites ({', '.join(SUITES)}), {args.trials} trials + base = {(args.trials + 1) * args.items * 2:,} item rows",
                 f"files written: {', '.join(written)}; index.html {size_mb:.1f} MiB (plotly.js inline once)"])


if __name__ == "__main__":
    main()
