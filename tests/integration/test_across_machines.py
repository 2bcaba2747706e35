"""A sweep across machines: one PostgreSQL study, two workers in two working directories with their own
HARNESS_HOME and one shared artifact directory; once the workers' runs/ are gone, a third directory
reports, forecasts, gates and promotes from the study and the artifact store alone."""

import json
import os
import shutil
import subprocess
import sys

import optuna
import pandas as pd
from conftest import run_cli, sweep_file

from harness.store import study as studies

GRID = """space:
  lora_r: {type: categorical, choices: [4]}
  learning_rate: {type: categorical, choices: [0.005]}
  n_samples: {type: categorical, choices: [16, 32, 48]}
sampler: {name: grid}
"""


def test_two_machines_sweep_into_one_store_and_a_third_reports_gates_and_promotes(tiny_model, tmp_path, postgres_url, harness_home):
    cfg = sweep_file(tmp_path, tiny_model, "fleet", n_trials=3, trackers=("none",))
    text = cfg.read_text()
    cfg.write_text(text[:text.index("space:")] + GRID + text[text.index("suites:"):].replace("sampler: {name: random, seed: 0}\n", ""))
    shared = tmp_path / "shared-artifacts"
    machines = [tmp_path / f"machine-{i}" for i in (1, 2, 3)]
    for m in machines:
        (m / "home").mkdir(parents=True)
    env = [{**os.environ, "HARNESS_HOME": str(m / "home")} for m in machines]
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(cfg), "--storage", postgres_url, "--artifacts", str(shared)]
    workers = [subprocess.Popen(cmd, cwd=m, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for m, e in zip(machines[:2], env[:2], strict=True)]
    for w in workers:
        _, err = w.communicate(timeout=1200)
        assert w.returncode == 0, err[-3000:]

    trials = optuna.load_study(study_name="fleet", storage=studies.storage_for("fleet", postgres_url)).get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and sum(studies.is_base_trial(t) for t in complete) == 1, "the base is scored once, by one machine"
    for t in complete:  # artifact ids, never a path of the machine that ran the trial
        assert "machine-" not in json.dumps(t.user_attrs), t.user_attrs
        assert set(t.user_attrs["artifacts"]) == ({"items", "scores"} if studies.is_base_trial(t) else {"items", "scores", "train", "adapter"})
    for m in machines[:2]:
        shutil.rmtree(m / "runs")
        shutil.rmtree(m / "home")

    reader, where = machines[2], ["--storage", postgres_url, "--artifacts", str(shared)]
    proc = run_cli("report", "fleet", *where, cwd=reader, env=env[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = pd.read_parquet(reader / "reports/fleet/results.parquet")
    # every complete trial, by its own number: which numbers complete depends on the two workers' timing
    # (a base claim lost to the other worker, or a surplus ask, takes a number and is not complete)
    assert set(results.candidate) == {"base"} | {f"trial-{t.number}" for t in complete if not studies.is_base_trial(t)}
    for (cand, suite), rows in results.groupby(["candidate", "suite"]):  # a CI for every candidate on every suite
        assert rows.ci_low.notna().all() and rows.ci_high.notna().all() and (rows.n > 0).all(), (cand, suite)
    assert set(results.suite) == {"extraction", "mmlu"}

    proc = run_cli("forecast", "fleet", *where, "--metric", "mmlu.acc", "--json", "curve.json", cwd=reader, env=env[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p["n"] for p in json.loads((reader / "curve.json").read_text())["points"]] == [16, 32, 48]

    (reader / "rules.yaml").write_text("rules:\n  - {metric: mmlu.acc, threshold: 0.0, mode: point, min_items: 4}\n")  # 4 MMLU items
    proc = run_cli("gate", "--rules", "rules.yaml", "--study", "fleet", *where, "--candidate", "best", "--promote", cwd=reader, env=env[2])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    champion = json.loads((reader / "reports/fleet/champion.json").read_text())
    adapter = champion["adapter"]
    assert adapter.startswith(str(reader / "home")), "fetched into this machine's cache"
    assert {"adapter_config.json", "adapter_model.safetensors", "train.json"} <= set(os.listdir(adapter))
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{reader / 'runs/mlflow.db'}")
    version = client.get_model_version_by_alias("fleet", "champion")
    assert version.tags["harness.candidate"] == champion["candidate"]
    assert "adapter/adapter_model.safetensors" in {f.path for f in client.list_artifacts(version.run_id, "adapter")}
