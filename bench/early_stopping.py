"""W6 (issues 22, 28): item-level early stopping of scoring, the same sweep with and without it.

Two sweeps of SmolLM2 on the extraction task from the same seed, random sampler (its suggestions do
not depend on results, so both runs train the very same trials): `scoring: {early_stop: none}` and
`{early_stop: sequential}` (alpha 0.05 spent across the looks, early_stop.py). Each run has its own
HARNESS_HOME (no response cache shared between them; the base model is the same prepared directory).
Measured: the best trial and the pick (`harness report`'s best.json) of each, and the scoring time of
the whole sweep (every trial's score_s, the base's and stopped trials' included).
Targets: the same pick, scoring time lower with early stopping (issue 22 asked >= 1.5x).
usage: python bench/early_stopping.py [--trials 8] [--items 64] [--chunk 16] [--backend hf|vllm]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from harness.store import paths
from harness.store import study as studies

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

SWEEP = """study: {study}
base: {base}
train: {{data: {repo}/suites/extraction/train.jsonl, epochs: 1, max_seq_len: 160, batch_size: 8, dtype: auto}}
space:
  lora_r: {{type: categorical, choices: [16]}}
  learning_rate: {{type: float, low: 1.0e-5, high: 3.0e-3, log: true}}
  n_samples: {{type: categorical, choices: [32, 64]}}
suites:
  - {{suite: {repo}/suites/extraction/suite.yaml, weight: 1.0, limit: {items}}}
sampler: {{name: random, seed: 0}}
budget: {{n_trials: {trials}}}
scoring: {scoring}
backend: {backend}
trackers: [none]
"""


def run(tmp: Path, study: str, base: str, trials: int, items: int, scoring: str, backend: str) -> tuple[optuna.Study, float, str]:
    (tmp / f"{study}.yaml").write_text(SWEEP.format(study=study, base=base, repo=REPO, items=items, trials=trials, scoring=scoring,
                                                         backend=backend))
    env = {**os.environ, "HARNESS_HOME": str(tmp / f"home-{study}")}
    t0 = time.perf_counter()
    proc = subprocess.run([str(REPO / ".venv/bin/harness"), "sweep", f"{study}.yaml"], cwd=tmp, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"harness sweep {study}.yaml failed:\n{proc.stderr[-3000:]}")
    report = subprocess.run([str(REPO / ".venv/bin/harness"), "report", study], cwd=tmp, capture_output=True, text=True, env=env)
    if report.returncode != 0:
        raise SystemExit(f"harness report {study} failed:\n{report.stderr[-3000:]}")
    picked = json.loads((tmp / "reports" / study / "best.json").read_text())["candidate"]
    return optuna.load_study(study_name=study, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp / paths.journal_file(study))))), wall, picked


def main() -> None:
    from common import write_table

    from harness.runtime import environment

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--backend", default="hf", choices=("hf", "vllm"))
    p.add_argument("--alpha", type=float, default=0.05)
    a = p.parse_args()
    environment.configure()
    from harness.models import resolve_base

    base = resolve_base("default").path  # prepared once here, shared by both runs
    S = optuna.trial.TrialState
    runs = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, scoring in (("full", "{early_stop: none}"),
                              ("early", f"{{early_stop: sequential, alpha: {a.alpha}, chunk: {a.chunk}, min_items: {a.chunk}}}")):
            study, wall, picked = run(tmp, name, base, a.trials, a.items, scoring, a.backend)
            trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(studies.TrialAttr.SURPLUS)]
            best = study.best_trial
            runs[name] = {"wall": wall, "score_s": sum(t.user_attrs.get(studies.TrialAttr.SCORE_S) or 0.0 for t in trials),
                          "complete": sum(t.state == S.COMPLETE and t.params != {} for t in trials),
                          "pruned": sum(t.state == S.PRUNED for t in trials), "best": best.number, "best_params": best.params,
                          "best_value": best.values[0], "pick": picked,
                          "items": sum(len(t.intermediate_values) for t in trials),
                          "params": [t.params for t in sorted(trials, key=lambda t: t.number) if t.params]}
    full, early = runs["full"], runs["early"]
    same_trials = full["params"] == early["params"]
    rows = []
    for name, r in runs.items():
        ratio = full["score_s"] / r["score_s"]
        verdict = "" if name == "full" else ("same pick, " + ("met 1.5x" if ratio >= 1.5 else "below 1.5x")
                                             if r["pick"] == full["pick"] else "MISSED: another pick")
        rows.append([name, f"{r['complete']} complete, {r['pruned']} stopped", f"trial {r['best']} ({r['best_value']:.4f})", r["pick"],
                     f"{r['score_s']:.0f}", f"{ratio:.2f}x", f"{r['wall']:.0f}", verdict])
    write_table("early_stopping" + ("" if a.backend == "hf" else f"-{a.backend}"),
                "W6: item-level early stopping of scoring (sequential test), the same sweep with and without (SmolLM2)",
                ["sweep", "trials", "best trial (objective)", "pick (best.json)", "scoring s (all trials)", "scoring speed-up",
                 "sweep wall s", "verdict"],
                rows, [f"{a.trials} trials + the base, random sampler seed 0 (same trials in both runs: {same_trials}); "
                       f"learning_rate 1e-5..3e-3 log x n_samples {{32, 64}}, lora_r 16; extraction {a.items} items, {a.backend} backend",
                       f"early stopping: sequential, alpha {a.alpha} spent across the looks, chunk {a.chunk}: tested after {a.chunk}, "
                       f"{2 * a.chunk}, {4 * a.chunk}, ... items; "
                       f"items scored in all: full {full['items'] or 'n/a'}, early {early['items']}",
                       "target (issues 22, 28): the same pick, the whole sweep's scoring time lower (issue 22: >= 1.5x)"])


if __name__ == "__main__":
    main()
