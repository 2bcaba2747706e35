"""Sweeps on the tiny model: real Optuna storage, real training and scoring, real trackers."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import browser
import optuna
import pandas as pd
import psutil
import pytest
from conftest import build_tiny_llama, free_port, run_cli, sweep_file

from harness.store import study as studies
from harness.sweep.heartbeat import BEAT


@pytest.fixture(scope="module")
def tracked(tiny_model, tmp_path_factory) -> Path:
    """A two-trial sweep tracked by MLflow and Neptune (offline), in a folder of its own."""
    root = tmp_path_factory.mktemp("tracked")
    cfg = sweep_file(root, tiny_model, "s4", n_trials=2)
    proc = run_cli("sweep", str(cfg), cwd=root, env={"NEPTUNE_API_TOKEN": "", "HARNESS_HOME": str(root / "home")}, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_sweep_runs_trials_after_the_base_and_tracks_them(tracked):
    tmp_path = tracked
    study = optuna.load_study(study_name="s4", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/s4/journal.log"))))
    trials = study.get_trials()
    assert trials[0].user_attrs["candidate"] == "base" and trials[0].params == {}
    done = [t for t in trials[1:] if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and len(trials) == 3
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
    # The study's own run ends with the sweep, carrying the best objective.
    [parent] = client.search_runs([exp.experiment_id], "tags.`harness.role` = 'study'")
    assert parent.info.status == "FINISHED"
    best = max(t.values[0] for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert abs(parent.data.metrics["best_objective"] - best) < 1e-9

    runs = read_neptune_offline(tmp_path / "runs/s4/neptune")
    assert set(runs) == {"s4-base"} | {f"s4-trial-{t.number}" for t in done}
    for t in done:
        logged = runs[f"s4-trial-{t.number}"]
        assert logged["params/lora_r"] == t.params["lora_r"]
        assert abs(logged["metrics/objective"] - t.values[0]) < 1e-9
        assert "metrics/mmlu.acc" in logged and "train/loss" in logged


@pytest.mark.needs("chromium")
def test_harness_ui_shows_the_study_run_with_its_trials_and_metrics_then_ends_with_its_server(tracked, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tracked / 'runs/mlflow.db'}")
    exp = client.get_experiment_by_name("s4")
    trials = {r.info.run_name: r for r in client.search_runs([exp.experiment_id], "tags.`harness.role` = 'trial'")}
    port = free_port()
    log = tmp_path / "ui.log"  # a file, not a pipe: the server logs every request, and a full pipe would stall it
    with open(log, "w") as out:
        ui = subprocess.Popen([sys.executable, "-m", "harness.cli", "ui", "--host", "127.0.0.1", "--port", str(port)], cwd=tracked, stdout=out,
                              stderr=subprocess.STDOUT, env={**os.environ, "HARNESS_HOME": str(tracked / "home")})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while f"MLflow UI at {url}" not in log.read_text() and ui.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert f"MLflow UI at {url}" in log.read_text(), log.read_text()[-3000:]
        server = psutil.Process(ui.pid).children(recursive=True)
        assert any("mlflow" in " ".join(p.cmdline()) for p in server)
        with browser.page() as tab:
            tab.goto(f"{url}/#/experiments/{exp.experiment_id}/runs")
            tab.get_by_text("s4", exact=True).first.wait_for(timeout=60_000)  # the study's run
            assistant = tab.locator('button[data-component-id="mlflow.assistant.chat_panel.close"]')
            if assistant.count():  # MLflow 3's chat panel: closed, for the screenshots
                assistant.first.click()
            tab.locator('button[data-component-id*="runnamecellrenderer"]').first.click()  # unfold its nested trial runs
            for name in trials:
                tab.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
            browser.screenshot(tab, tmp_path / "mlflow-ui-runs.png")
            name, run = max(trials.items())
            tab.goto(f"{url}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}")
            tab.get_by_text("lora_r", exact=True).first.wait_for(timeout=60_000)
            page = tab.inner_text("body")
            for metric in ("objective", "mmlu.acc", "extraction.field_f1.ci_low", "train_loss"):
                assert metric in page, metric
            assert str(run.data.params["lora_r"]) in page and "Parent run" in page and "s4" in page
            tab.set_viewport_size({"width": 1400, "height": 1800})  # the run page scrolls inside its panel: a tall window shows its metrics
            browser.screenshot(tab, tmp_path / "mlflow-ui-trial.png")
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
    assert ui.returncode == 128 + signal.SIGTERM, log.read_text()[-2000:]
    assert "stopping the MLflow UI (SIGTERM)" in log.read_text()
    assert not [p.pid for p in server if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "the MLflow server outlived harness ui"


def test_harness_ui_without_a_store_or_on_a_taken_port_says_so_before_starting(tmp_path):
    proc = run_cli("ui", cwd=tmp_path)  # no runs/mlflow.db here
    assert proc.returncode == 2 and "no MLflow store at" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("ui", "--port", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "--port 0" in proc.stderr
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs/mlflow.db").write_bytes(b"")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("ui", "--port", str(port), cwd=tmp_path)
    assert proc.returncode == 2 and f"--port {port}: cannot serve on 127.0.0.1:{port}" in proc.stderr, proc.stderr[-2000:]


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
    # Trial 1 completes, trial 2 is killed while training (24 steps: long enough to be caught running).
    cfg = sweep_file(tmp_path, tiny_model, "skill", n_trials=2, trackers=("none",), max_steps=24)
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(cfg)]
    env = {**os.environ, "HARNESS_STALE_S": "3"}
    worker = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900  # generous: a loaded CI machine is slow, the test is not timed
    while time.time() < deadline and [t.number for t in _running(tmp_path / "runs/skill/journal.log", "skill")] != [2]:
        time.sleep(0.5)
    running = _running(tmp_path / "runs/skill/journal.log", "skill")
    assert [t.number for t in running] == [2] and BEAT in running[0].system_attrs, "the sweep never reached trial 2"
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
    assert len(retry) == 1 and retry[0].params == killed.params and retry[0].state == optuna.trial.TrialState.COMPLETE, retry[0].user_attrs
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("candidate") != "base"]
    assert len(complete) == 2
    for number, t in before.items():  # completed trials are untouched
        again = next(x for x in trials if x.number == number)
        assert again.values == t.values and again.datetime_complete == t.datetime_complete


def test_a_sweep_in_which_no_trial_completes_exits_1_and_says_why(smollm2_dir, tmp_path, harness_home):
    # A base with a NaN in its final norm scores (badly) but every trial's training loss is NaN.
    broken = build_tiny_llama(tmp_path / "broken", smollm2_dir)
    from safetensors.torch import load_file, save_file

    weights = load_file(broken / "model.safetensors")
    weights["model.norm.weight"][0] = float("nan")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    cfg = sweep_file(tmp_path, broken, "allfail", n_trials=2, trackers=("none",))
    proc = run_cli("sweep", str(cfg), cwd=tmp_path, timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "no trial completed" in proc.stderr
    assert "2 trial(s) failed" in proc.stderr and "2 x loss became nan at step N" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def _running(journal: Path, study: str) -> list:
    if not journal.exists():
        return []
    try:
        trials = optuna.load_study(study_name=study, storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal)))).get_trials()
    except KeyError:
        return []
    return [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]


def test_sigterm_to_a_two_worker_sweep_ends_both_and_marks_their_trials_interrupted(tiny_model, tmp_path, harness_home):
    cfg = sweep_file(tmp_path, tiny_model, "term", n_trials=6, trackers=("none",), max_steps=200)
    parent = subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", str(cfg), "--workers", "2"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "runs/term/journal.log"
    deadline = time.time() + 900
    # Budget trials only: the base model's trial is scored in seconds and may finish before the signal lands.
    training = lambda: [t for t in _running(journal, "term") if t.params]  # noqa: E731
    while time.time() < deadline and len(training()) < 2 and parent.poll() is None:
        time.sleep(0.5)
    running = training()
    assert len(running) == 2, "both workers should be training a trial"
    tree = psutil.Process(parent.pid).children(recursive=True)
    assert tree, "the extra worker is a child process"
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(300) == 128 + signal.SIGTERM, parent.stderr.read()[-2000:]
    _, alive = psutil.wait_procs(tree, timeout=120)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = {t.number: t for t in optuna.load_study(study_name="term", storage=storage).get_trials()}
    for t in running:
        after = trials[t.number]
        assert after.state == optuna.trial.TrialState.FAIL and after.user_attrs["fail_reason"] == "interrupted (SIGTERM)"
    assert not _running(journal, "term")


def test_two_workers_run_exactly_the_budget(tiny_model, tmp_path, harness_home):
    # Two shells running the same command on one SQLite study (PostgreSQL with workers in separate
    # directories: test_across_machines.py; --workers N: the SIGTERM test above).
    cfg = sweep_file(tmp_path, tiny_model, "duo", n_trials=3, trackers=("none",))
    url = f"sqlite:///{tmp_path / 'duo.db'}"
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(cfg), "--storage", url]
    workers = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=900)
        assert w.returncode == 0, err[-3000:]
    trials = optuna.load_study(study_name="duo", storage=studies.storage_for("duo", url)).get_trials()
    # The base is scored once: a second claim of it (both workers claimed at once) is withdrawn as surplus.
    bases = [t for t in trials if t.user_attrs.get("candidate") == "base" and t.state == optuna.trial.TrialState.COMPLETE]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("candidate") != "base"]
    assert len(bases) == 1 and len(complete) == 3
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.user_attrs.get("surplus") for t in trials if t.state == optuna.trial.TrialState.FAIL)
    assert len({t.user_attrs["worker"] for t in complete}) <= 2


def test_multi_fidelity_climbs_rungs_and_prunes_by_successive_halving(tiny_model, tmp_path, harness_home):
    cfg = sweep_file(tmp_path, tiny_model, "mf", n_trials=3, trackers=("none",))
    cfg.write_text(cfg.read_text() + "multi_fidelity: {enabled: true, min_samples: 16, reduction_factor: 2}\n")
    proc = run_cli("sweep", str(cfg), cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/mf/journal.log")))
    trials = [t for t in optuna.load_study(study_name="mf", storage=storage).get_trials() if t.user_attrs.get("candidate") != "base"]
    assert len(trials) == 3
    S = optuna.trial.TrialState
    for t in trials:
        assert "n_samples" not in t.params  # climbed, not sampled
        climbed = [r["n_samples"] for r in t.user_attrs["rungs"]]
        assert climbed == [16, 32][:len(climbed)] and t.user_attrs["n_samples"] == climbed[-1]
        assert all((tmp_path / f"runs/mf/trial-{t.number}/n{n}/items.parquet").is_file() for n in climbed)
        assert t.state == (S.COMPLETE if climbed[-1] == 32 else S.PRUNED)
    assert trials[0].state == S.COMPLETE  # asynchronous halving promotes the first trial at every rung
    for t in trials:  # each decision follows the rule: promoted iff in the top 1/2 of the rung so far
        for rung, record in enumerate(t.user_attrs["rungs"][:-1] if t.state == S.COMPLETE else t.user_attrs["rungs"]):
            so_far = [x.system_attrs[f"completed_rung_{rung}"] for x in trials
                      if x.number <= t.number and f"completed_rung_{rung}" in x.system_attrs]
            kth_best = sorted(so_far, reverse=True)[max(len(so_far) // 2 - 1, 0)]
            assert (record["objective"] >= kth_best) == (t.state == S.COMPLETE or rung < len(t.user_attrs["rungs"]) - 1)
    proc = run_cli("report", "mf", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = (tmp_path / "reports/mf/leaderboard.md").read_text()
    assert "rungs" in board and "16→32" in board


def test_grid_sweep_stops_when_the_grid_is_done(tiny_model, tmp_path, harness_home):
    cfg = sweep_file(tmp_path, tiny_model, "grid", n_trials=3, trackers=("none",), max_steps=1)
    text = cfg.read_text().replace("{type: float, low: 1.0e-3, high: 1.0e-2, log: true}", "{type: categorical, choices: [1.0e-3]}")
    cfg.write_text(text.replace("choices: [16, 32]", "choices: [16]").replace("name: random", "name: grid"))
    proc = run_cli("sweep", str(cfg), cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]  # Optuna's own GridSampler raised in the last tell
    assert "the grid is done: all 2 configurations tried" in proc.stdout + proc.stderr
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/grid/journal.log")))
    trials = [t for t in optuna.load_study(study_name="grid", storage=storage).get_trials() if t.user_attrs.get("candidate") != "base"]
    assert sorted(t.params["lora_r"] for t in trials) == [4, 8]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_early_stopping_prunes_a_trial_worse_than_the_best_on_the_same_items(tiny_model, tmp_path, harness_home):
    """scoring: {early_stop: sequential}: trial 1 learns the task (every answer "yes"), trial 2 (a learning
    rate that changes nothing) is stopped once the Wilcoxon test finds it worse on the same items; the
    base and trial 1, fully scored, report every item; the pruned trial cannot be picked."""
    import json

    suite = tmp_path / "yes"
    suite.mkdir()
    (suite / "dev.jsonl").write_text("".join(json.dumps({"id": f"q{i:02d}", "text": f"Record {i}: is it valid?", "answer": "yes"}) + "\n"
                                             for i in range(40)))
    (suite / "suite.yaml").write_text("name: affirm\ndata: {path: dev.jsonl}\nprompt: {user: '{text}'}\ntarget: '{answer}'\n"
                                      "generation: {max_tokens: 3}\nmetrics: [{name: contains}]\nheadline: contains\n")
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Record {i}: is it valid?"}, {"role": "assistant", "content": "yes"}]}) + "\n" for i in range(100, 180)))
    cfg = tmp_path / "es.yaml"
    cfg.write_text(f"""
study: es
base: {tiny_model}
train: {{data: train.jsonl, max_steps: 24, batch_size: 8, max_seq_len: 64, dtype: float32}}
space:
  lora_r: {{type: categorical, choices: [8]}}
  learning_rate: {{type: categorical, choices: [3.0e-2, 1.0e-9]}}
  n_samples: {{type: categorical, choices: [64]}}
suites:
  - {{suite: yes/suite.yaml, weight: 2.0}}
scoring: {{early_stop: sequential, alpha: 0.1, chunk: 8, min_items: 8}}
budget: {{n_trials: 2}}
trackers: [none]
""")
    (tmp_path / "runs/es").mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/es/journal.log")))
    study = optuna.create_study(study_name="es", storage=storage, direction="maximize")
    for lr in (3e-2, 1e-9):  # the order matters to the test, so it is fixed (Optuna's enqueue_trial)
        study.enqueue_trial({"lora_r": 8, "learning_rate": lr, "n_samples": 64})
    proc = run_cli("sweep", str(cfg), cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    S = optuna.trial.TrialState
    trials = optuna.load_study(study_name="es", storage=storage).get_trials()
    (base,) = [t for t in trials if t.user_attrs.get("candidate") == "base"]
    good, bad = [t for t in trials if t.user_attrs.get("candidate") != "base"]  # enqueued first: trials 0 and 1
    assert base.state == good.state == S.COMPLETE
    assert len(base.intermediate_values) == len(good.intermediate_values) == 40  # every item, steps 0..39
    # An item's value is weight x its score (one suite): their mean is the objective.
    assert abs(sum(good.intermediate_values.values()) / 40 - good.values[0]) < 1e-9
    assert good.values[0] >= 1.0, "trial 1 did not learn the task: the test cannot tell a worse trial"
    assert bad.state == S.PRUNED, bad.user_attrs.get("fail_reason")
    scored = len(bad.intermediate_values)
    assert scored in (8, 16, 32)  # stopped at a test: after 8, 16 or 32 items (parts double), after min_items
    reason = bad.user_attrs["fail_reason"]
    assert f"scoring stopped after {scored} of 40 items" in reason and f"trial-{good.number}" in reason
    assert pd.read_parquet(tmp_path / f"runs/es/trial-{bad.number}/items.parquet").shape[0] == scored  # its items are kept
    proc = run_cli("report", "es", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = json.loads((tmp_path / "reports/es/best.json").read_text())
    assert best["candidate"] == f"trial-{good.number}"


def test_replicates_retrain_the_top_configuration_with_new_seeds(tiny_model, tmp_path, harness_home):
    """replicates: {seeds: 3, top: 1}: after the budget, the best configuration is trained twice more
    (other seeds, the same params, outside the budget); the report folds the three into one candidate
    with their spread, and the leaderboard shows it."""
    import json

    cfg = sweep_file(tmp_path, tiny_model, "rep", n_trials=2, trackers=("none",), max_steps=1)
    cfg.write_text(cfg.read_text() + "replicates: {seeds: 3, top: 1}\n")
    proc = run_cli("sweep", str(cfg), cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/rep/journal.log")))
    trials = [t for t in optuna.load_study(study_name="rep", storage=storage).get_trials() if t.user_attrs.get("candidate") != "base"]
    originals = [t for t in trials if "replicate_of" not in t.user_attrs]
    replicates = [t for t in trials if "replicate_of" in t.user_attrs]
    assert len(originals) == 2 and len(replicates) == 2
    top = max(originals, key=lambda t: t.values[0])
    assert {t.user_attrs["replicate_of"] for t in replicates} == {top.number}
    assert all(t.params == top.params and t.state == optuna.trial.TrialState.COMPLETE for t in replicates)
    proc = run_cli("report", "rep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = pd.read_csv(tmp_path / "reports/rep/leaderboard.csv")
    assert board[board.candidate == f"trial-{top.number}"].seeds.iloc[0] == 3
    best = json.loads((tmp_path / "reports/rep/best.json").read_text())
    assert best["candidate"] not in {f"trial-{t.number}" for t in replicates}  # a configuration, named by its first trial


def test_adaptive_sizes_climb_the_ladder_then_choose_by_the_forecast(tiny_model, tmp_path, harness_home):
    """n_samples: {adaptive: ...}: min, 2x, 4x, 8x min, then the size the forecast asks for, each trial
    saying why; the report tells the sizes chosen."""
    cfg = sweep_file(tmp_path, tiny_model, "adapt", n_trials=5, trackers=("none",), max_steps=1)
    text = cfg.read_text().replace("{type: float, low: 1.0e-3, high: 1.0e-2, log: true}", "{type: categorical, choices: [1.0e-3]}")
    text = text.replace("choices: [4, 8]", "choices: [4]").replace("n_samples: {type: categorical, choices: [16, 32]}",
                                                                     "n_samples: {adaptive: {min: 4, max: 64}}")
    cfg.write_text(text)
    proc = run_cli("sweep", str(cfg), cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/adapt/journal.log")))
    trials = sorted((t for t in optuna.load_study(study_name="adapt", storage=storage).get_trials() if t.user_attrs.get("candidate") != "base"),
                    key=lambda t: t.number)
    sizes = [t.params["n_samples"] for t in trials]
    assert sizes[:4] == [4, 8, 16, 32] and all("starting ladder" in t.user_attrs["chosen_because"] for t in trials[:4])
    assert len(trials) == 5 and 32 < sizes[4] <= 64 and "starting ladder" not in trials[4].user_attrs["chosen_because"]
    proc = run_cli("report", "adapt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "The sweep chose its sizes: 4 (the starting ladder" in (tmp_path / "reports/adapt/leaderboard.md").read_text()


@pytest.mark.needs("vllm")
def test_a_vllm_sweep_checks_parity_then_scores_every_trial_on_one_engine(tiny_model, tmp_path, harness_home):
    """--backend auto (the file says hf) over a space with DoRA: the parity pre-check against
    transformers+peft runs first, then ONE engine, sized up front for the space's largest rank, scores
    the base and every LoRA trial, and the DoRA trials (which vLLM cannot serve) are scored on hf;
    --n-trials overrides the file's budget and --study its study name."""
    cfg = sweep_file(tmp_path, tiny_model, "filename", n_trials=2, trackers=("none",))
    assert "backend: hf" in cfg.read_text()
    cfg.write_text(cfg.read_text().replace("choices: [4, 8]", "choices: [4, 16]}\n  use_dora: {type: categorical, choices: [false, true]"))
    # the same file with --backend vllm: refused before anything runs, naming the file and the way out
    refused = run_cli("sweep", str(cfg), "--backend", "vllm", cwd=tmp_path)
    assert refused.returncode == 2 and f"{cfg}: backend: vllm cannot score DoRA adapters" in refused.stderr, refused.stderr[-2000:]
    assert "backend auto" in refused.stderr and not (tmp_path / "runs").exists()
    proc = run_cli("sweep", str(cfg), "--n-trials", "3", "--backend", "auto", "--study", "onengine", cwd=tmp_path, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "runs/onengine/journal.log").is_file() and not (tmp_path / "runs/filename").exists()
    parity = [line for line in proc.stderr.splitlines() if "parity hf vs vllm:" in line]
    good, total = map(int, parity[0].split("parity hf vs vllm: ")[1].split(" ")[0].split("/"))
    assert len(parity) == 1 and good == total >= 8, parity
    # The parity check's own engine first (its two random adapters); after it, one engine scores everything.
    after = proc.stderr.split("parity hf vs vllm:", 1)[1]
    engines = [line for line in after.splitlines() if "starting the vllm engine" in line]
    assert len(engines) == 1 and "max_lora_rank 16" in engines[0], engines  # sized for rank 16 before any adapter existed
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/onengine/journal.log")))
    trials = [t for t in optuna.load_study(study_name="onengine", storage=storage).get_trials() if t.state.name == "COMPLETE"]
    assert len(trials) == 4  # the base and --n-trials 3 (the file said 2)
    dora = {t.number: t.params.get("use_dora", False) for t in trials}
    assert set(dora.values()) == {False, True}, dora
    for t in trials:
        name = "base" if t.number == 0 else f"trial-{t.number}"
        scored_on = set(pd.read_parquet(tmp_path / "runs/onengine" / name / "items.parquet").backend)
        assert scored_on == ({"hf"} if dora[t.number] else {"vllm"}), (name, scored_on)


def test_timeout_stops_starting_trials_and_a_rerun_goes_on(tiny_model, tmp_path, harness_home):
    """--timeout counts from the sweep's start: 0.5 s is spent on the base, so no trial starts, and the
    sweep says why; the same study run again without it scores the trials, not the base again."""
    cfg = sweep_file(tmp_path, tiny_model, "timed", n_trials=1, trackers=("none",))
    proc = run_cli("sweep", str(cfg), "--timeout", "0.5", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "the timeout (0.5 s) has passed: no further trial started (0 of 1 counted)" in out, out[-3000:]
    assert "no trial completed" in proc.stderr
    proc = run_cli("sweep", str(cfg), cwd=tmp_path)
    assert proc.returncode == 0 and "trial 0: scoring the base model" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/timed/journal.log")))
    assert [t.state.name for t in optuna.load_study(study_name="timed", storage=storage).get_trials()] == ["COMPLETE", "COMPLETE"]
