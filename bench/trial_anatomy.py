"""W2 (issue 10): where one sweep trial's time goes, from the stage timings the sweep records.

Runs the quickstart sweep's space for ONE trial (base trial 0 + 1 trial, MLflow tracking) in a
scratch directory, or reads an existing study (`--study NAME` in runs/), then splits each trial's
wall time (Optuna start to complete) into: model load (for training), training, held-out loss
(before and after), adapter load, scoring per suite and its overhead (items, CIs), tracking, and
the rest (Optuna, saving the adapter, process overheads).
The goal: scoring is a minor share of a trial.
usage: python bench/trial_anatomy.py [--study NAME] [--backend hf|vllm]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

from harness.store import paths
from harness.store import study as studies

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))


def anatomy(study: optuna.Study) -> list[list]:
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        stages = t.user_attrs.get(studies.TrialAttr.STAGES)
        if not stages:
            continue  # the base trial: nothing trained
        wall = (t.datetime_complete - t.datetime_start).total_seconds()
        parts = {**stages, "other (Optuna, saving, overheads)": max(wall - sum(stages.values()), 0.0)}
        scoring = sum(v for k, v in stages.items() if k.startswith("scoring"))
        for name, seconds in parts.items():
            rows.append([f"trial-{t.number}", name, f"{seconds:.1f}", f"{seconds / wall:.0%}"])
        rows.append([f"trial-{t.number}", "**total** (scoring share)", f"{wall:.1f}", f"scoring {scoring / wall:.0%}"])
    return rows


def main() -> None:
    from common import write_table

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study")
    p.add_argument("--backend", default="hf")
    a = p.parse_args()
    if a.study:
        where = Path.cwd()
        study = optuna.load_study(study_name=a.study, storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(where / paths.journal_file(a.study)))))
        source = f"study {a.study} (runs/{a.study})"
    else:
        tmp = Path(tempfile.mkdtemp(prefix="w2-"))
        sweep = (REPO / "sweeps/quickstart.yaml").read_text().replace("study: quickstart", "study: w2")
        sweep = sweep.replace("data: suites/", f"data: {REPO}/suites/").replace("suite: suites/", f"suite: {REPO}/suites/")
        (tmp / "w2.yaml").write_text(sweep)
        subprocess.run([str(REPO / ".venv/bin/harness"), "sweep", "w2.yaml", "--n-trials", "1", "--backend", a.backend],
                       cwd=tmp, check=True, capture_output=True)
        study = optuna.load_study(study_name="w2", storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp / paths.journal_file("w2")))))
        source = f"one trial of sweeps/quickstart.yaml, backend {a.backend}, fresh study"
    write_table("trial_anatomy", "W2: anatomy of a sweep trial (SmolLM2, quickstart space)",
                ["trial", "stage", "seconds", "share of the trial"], anatomy(study),
                [f"source: {source}", "model load = loading the base for training; the scoring engine is loaded once per worker, "
                 "outside trials", "goal: scoring a minor share of a trial"])


if __name__ == "__main__":
    main()
