"""Sweeps on the tiny model: real Optuna storage, real training and scoring, real trackers."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna

from conftest import REPO, run_cli


def sweep_file(tmp: Path, tiny_model: Path, study: str, n_trials: int = 4, trackers=("mlflow", "neptune"), max_steps: int = 2) -> Path:
    suite_dir = tmp / "suite"
    suite_dir.mkdir(exist_ok=True)
    (suite_dir / "dev.jsonl").write_text("\n".join((REPO / "suites/extraction/dev.jsonl").read_text().splitlines()[:3]) + "\n")
    (suite_dir / "suite.yaml").write_text((REPO / "suites/extraction/suite.yaml").read_text().replace("max_tokens: 96", "max_tokens: 8"))
    path = tmp / f"{study}.yaml"
    path.write_text(f"""
study: {study}
base: {tiny_model}
train: {{data: {REPO / 'suites/extraction/train.jsonl'}, max_steps: {max_steps}, batch_size: 4, max_seq_len: 160, dtype: float32}}
space:
  lora_r: {{type: categorical, choices: [4, 8]}}
  learning_rate: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
  n_samples: {{type: categorical, choices: [16, 32]}}
suites:
  - {{suite: {suite_dir / 'suite.yaml'}, weight: 1.0}}
  - {{suite: mmlu, weight: 0.5, limit: 4}}
sampler: {{name: random, seed: 0}}
budget: {{n_trials: {n_trials}}}
backend: hf
trackers: [{', '.join(trackers)}]
""")
    return path


def test_sweep_runs_trials_after_the_base_and_tracks_them(tiny_model, tmp_path, harness_home):
    cfg = sweep_file(tmp_path, tiny_model, "s4")
    proc = run_cli("sweep", str(cfg), cwd=tmp_path, env={"NEPTUNE_API_TOKEN": ""}, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="s4", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/s4/journal.log"))))
    trials = study.get_trials()
    assert trials[0].user_attrs["candidate"] == "base" and trials[0].params == {}
    done = [t for t in trials[1:] if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 and len(trials) == 5
    for t in done:
        assert set(t.params) == {"lora_r", "learning_rate", "n_samples"}
        assert (tmp_path / f"runs/s4/trial-{t.number}/adapter/adapter_config.json").is_file()
        assert (tmp_path / f"runs/s4/trial-{t.number}/items.parquet").is_file()

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs/mlflow.db'}")
    exp = client.get_experiment_by_name("s4")
    runs = client.search_runs([exp.experiment_id], "tags.`harness.role` = 'trial'")
    assert sorted(r.info.run_name for r in runs) == sorted(["base"] + [f"trial-{t.number}" for t in done])
    by_name = {r.info.run_name: r for r in runs}
    for t in done:
        run = by_name[f"trial-{t.number}"]
        assert int(run.data.params["lora_r"]) == t.params["lora_r"]
        assert abs(run.data.metrics["objective"] - t.values[0]) < 1e-9
        assert "extraction.field_f1.ci_low" in run.data.metrics and "mmlu.acc" in run.data.metrics
        assert client.list_artifacts(run.info.run_id, "adapter")

    runs = read_neptune_offline(tmp_path / "runs/s4/neptune")
    assert set(runs) == {"s4-base"} | {f"s4-trial-{t.number}" for t in done}
    for t in done:
        logged = runs[f"s4-trial-{t.number}"]
        assert logged["params/lora_r"] == t.params["lora_r"]
        assert abs(logged["metrics/objective"] - t.values[0]) < 1e-9
        assert "metrics/mmlu.acc" in logged and "train/loss" in logged


def read_neptune_offline(folder: Path) -> dict[str, dict]:
    """neptune-scale's offline SQLite files -> {run_id: {field: last value}}, decoded with its own protobufs."""
    from neptune_api.proto.neptune_pb.ingest.v1.common_pb2 import UpdateRunSnapshot

    runs = {}
    for path in folder.rglob("run_operations.sqlite3"):
        db = sqlite3.connect(path)
        run_id = db.execute("SELECT run_id FROM metadata").fetchone()[0]
        fields = {}
        for kind, blob in db.execute("SELECT operation_type, operation FROM run_operations ORDER BY sequence_id"):
            if kind != 0:  # 1 = create run
                continue
            update = UpdateRunSnapshot.FromString(blob)
            for key, value in [*update.assign.items(), *update.append.items()]:
                fields[key] = getattr(value, value.WhichOneof("value"))
        runs[run_id] = fields
    return runs


def test_sigkill_mid_trial_then_rerun_finishes_the_budget(tiny_model, tmp_path, harness_home):
    cfg = sweep_file(tmp_path, tiny_model, "skill", n_trials=3, trackers=("none",), max_steps=40)
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(cfg)]
    env = {**os.environ, "HARNESS_STALE_S": "3"}
    worker = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "runs/skill/trial-2/heartbeat").exists():
        time.sleep(0.5)
    assert (tmp_path / "runs/skill/trial-2/heartbeat").exists(), "the sweep never reached trial 2"
    time.sleep(2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/skill/journal.log")))
    before = {t.number: t for t in optuna.load_study(study_name="skill", storage=storage).get_trials()
              if t.state == optuna.trial.TrialState.COMPLETE}
    assert 1 in before and 0 in before
    time.sleep(4)  # the dead worker's heartbeat goes stale

    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = optuna.load_study(study_name="skill", storage=storage).get_trials()
    killed = next(t for t in trials if t.number == 2)
    assert killed.state == optuna.trial.TrialState.FAIL and "worker died" in killed.user_attrs["fail_reason"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 2]
    assert len(retry) == 1 and retry[0].params == killed.params and retry[0].state == optuna.trial.TrialState.COMPLETE
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("candidate") != "base"]
    assert len(complete) == 3
    for number, t in before.items():  # completed trials are untouched
        again = next(x for x in trials if x.number == number)
        assert again.values == t.values and again.datetime_complete == t.datetime_complete


def test_two_workers_on_sqlite_run_exactly_the_budget(tiny_model, tmp_path, harness_home):
    cfg = sweep_file(tmp_path, tiny_model, "duo", n_trials=4, trackers=("none",))
    url = f"sqlite:///{tmp_path / 'duo.db'}"
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(cfg), "--storage", url]
    workers = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=900)
        assert w.returncode == 0, err[-3000:]
    trials = optuna.load_study(study_name="duo", storage=url).get_trials()
    bases = [t for t in trials if t.user_attrs.get("candidate") == "base"]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("candidate") != "base"]
    assert len(bases) == 1 and len(complete) == 4
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.user_attrs.get("surplus") for t in trials if t.state == optuna.trial.TrialState.FAIL)
