"""A sweep across machines: one PostgreSQL study, two workers in two working directories with their own
HARNESS_HOME and one artifact store (a shared directory, or a bucket of a real S3 API server); once the
workers' runs/ are gone, a third directory reports, forecasts, gates and promotes from the study and the
artifact store alone. A bucket that is missing, refuses the credentials or cannot be reached stops a
sweep before any training, in one line that shows no secret."""

import json
import os
import shutil
import subprocess
import sys

import optuna
import pandas as pd
import pytest
from conftest import HEAVY, free_port, run_cli, run_cli_noting_imports, sweep_file

from harness.store import study as studies

GRID = """space:
  lora_r: {type: categorical, choices: [4]}
  learning_rate: {type: categorical, choices: [0.005]}
  n_samples: {type: categorical, choices: [16, 32, 48]}
sampler: {name: grid}
"""


def grid_sweep(tmp_path, tiny_model, study: str):
    cfg = sweep_file(tmp_path, tiny_model, study, n_trials=3, trackers=("none",))
    text = cfg.read_text()
    cfg.write_text(text[:text.index("space:")] + GRID + text[text.index("suites:"):].replace("sampler: {name: random, seed: 0}\n", ""))
    return cfg


@pytest.mark.parametrize("store", ["directory", "s3"])
def test_two_machines_sweep_into_one_store_and_a_third_reports_gates_and_promotes(store, tiny_model, tmp_path, postgres_url, harness_home,
                                                                                  request):
    cfg = grid_sweep(tmp_path, tiny_model, "fleet")
    aws, secret = {}, None
    if store == "s3":
        aws, bucket, _ = request.getfixturevalue("s3_server")
        shared, secret = f"s3://{bucket}/team-a/fleet", aws["AWS_SECRET_ACCESS_KEY"]
    else:
        shared = str(tmp_path / "shared-artifacts")
    machines = [tmp_path / f"machine-{i}" for i in (1, 2, 3)]
    for m in machines:
        (m / "home").mkdir(parents=True)
    env = [{**os.environ, **aws, "HARNESS_HOME": str(m / "home")} for m in machines]
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(cfg), "--storage", postgres_url, "--artifacts", shared]
    workers = [subprocess.Popen(cmd, cwd=m, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for m, e in zip(machines[:2], env[:2], strict=True)]
    said = []
    for w in workers:
        out, err = w.communicate(timeout=1200)
        assert w.returncode == 0, err[-3000:]
        said += [out, err]

    trials = optuna.load_study(study_name="fleet", storage=studies.storage_for("fleet", postgres_url)).get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and sum(studies.is_base_trial(t) for t in complete) == 1, "the base is scored once, by one machine"
    for t in complete:  # artifact ids, never a path of the machine that ran the trial
        assert "machine-" not in json.dumps(t.user_attrs), t.user_attrs
        assert set(t.user_attrs["artifacts"]) == ({"items", "scores"} if studies.is_base_trial(t) else {"items", "scores", "train", "adapter"})
    for m in machines[:2]:
        shutil.rmtree(m / "runs")
        shutil.rmtree(m / "home")

    # the reader names no store: the study recorded it (a directory needs --artifacts where another machine mounts it)
    reader, where = machines[2], ["--storage", postgres_url] + (["--artifacts", shared] if store == "directory" else [])
    proc = run_cli("report", "fleet", *where, cwd=reader, env=env[2])
    said += [proc.stdout, proc.stderr]
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
    said += [proc.stdout, proc.stderr]
    assert [p["n"] for p in json.loads((reader / "curve.json").read_text())["points"]] == [16, 32, 48]

    (reader / "rules.yaml").write_text("rules:\n  - {metric: mmlu.acc, threshold: 0.0, mode: point, min_items: 4}\n")  # 4 MMLU items
    proc = run_cli("gate", "--rules", "rules.yaml", "--study", "fleet", *where, "--candidate", "best", "--promote", cwd=reader, env=env[2])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    said += [proc.stdout, proc.stderr]
    champion = json.loads((reader / "reports/fleet/champion.json").read_text())
    adapter = champion["adapter"]
    assert adapter.startswith(str(reader / "home")), "fetched into this machine's cache"
    assert {"adapter_config.json", "adapter_model.safetensors", "train.json"} <= set(os.listdir(adapter))
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{reader / 'runs/mlflow.db'}")
    version = client.get_model_version_by_alias("fleet", "champion")
    assert version.tags["harness.candidate"] == champion["candidate"]
    assert "adapter/adapter_model.safetensors" in {f.path for f in client.list_artifacts(version.run_id, "adapter")}

    if store == "s3":
        import boto3

        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=secret)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys and all(k.startswith("team-a/fleet/") for k in keys), keys[:5]
        assert sum(len(t.user_attrs["artifacts"]) for t in complete) == len(keys), "every artifact in the bucket, nothing else left there"
        assert_secret_nowhere(secret, said, [tmp_path], trials)


def assert_secret_nowhere(secret: str, said: list[str], folders, trials) -> None:
    """Not in anything a command printed, any file it wrote (reports, logs, caches, MLflow) or the study."""
    assert not [text[-2000:] for text in said if secret in text]
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert secret.encode() not in path.read_bytes(), path
    assert all(secret not in json.dumps(t.user_attrs) + json.dumps(t.system_attrs, default=str) for t in trials)


@pytest.mark.parametrize("case", ["no bucket", "bad credentials", "unreachable endpoint"])
def test_a_bucket_that_cannot_be_used_stops_the_sweep_before_training(case, s3_server, tiny_model, tmp_path, harness_home):
    aws, bucket, _ = s3_server
    cfg = grid_sweep(tmp_path, tiny_model, "nowhere")
    url = f"s3://{bucket}/x"
    if case == "no bucket":
        url, expect = "s3://no-such-bucket/x", "no bucket 'no-such-bucket'"
    elif case == "bad credentials":
        aws = {**aws, "AWS_SECRET_ACCESS_KEY": "wrong-" + aws["AWS_SECRET_ACCESS_KEY"]}
        expect = "refused these credentials"
    else:
        aws = {**aws, "AWS_ENDPOINT_URL": f"http://user:{aws['AWS_SECRET_ACCESS_KEY']}@127.0.0.1:{free_port()}"}  # nothing listens
        expect = "cannot reach the object store"
    proc, loaded = run_cli_noting_imports("sweep", str(cfg), "--artifacts", url, cwd=tmp_path, env=aws, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert not [m for m in loaded if m in HEAVY], f"a model or engine was loaded first: {loaded}"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and url in errors[0] and expect in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    journal = tmp_path / "runs/nowhere/journal.log"
    if journal.is_file():  # the study may exist (it is made before its store is opened), with no trial in it
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(str(journal)))
        assert all(not s.n_trials for s in optuna.get_all_study_summaries(storage)), "no trial started"
        assert not any("artifacts" in s.user_attrs for s in optuna.get_all_study_summaries(storage)), "the bad store is not recorded"
    assert_secret_nowhere(aws["AWS_SECRET_ACCESS_KEY"], [proc.stdout, proc.stderr], [tmp_path / "runs"] if (tmp_path / "runs").exists() else [], [])
