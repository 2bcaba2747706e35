"""docs/ci/model-gate.yml works: its `run:` steps after `make setup`, in order, as a script (the
`uses:` steps are GitHub's checkout, cache and upload; setup is what `make test` itself ran first), on a
sweep of the tiny model; the job passes on a pick that meets the rules and fails on one that misses
them, with the verdict in the job summary, JUnit and JSON."""

import json
import os
import subprocess
import xml.etree.ElementTree as ET

import optuna
import yaml
from conftest import REPO, sweep_file
from optuna.storages.journal import JournalFileBackend, JournalStorage

WORKFLOW = REPO / "docs/ci/model-gate.yml"


def run_job(workdir, env) -> list[subprocess.CompletedProcess]:
    """The job's run: steps after setup, in bash as a runner does (-e: a failing step ends the job)."""
    doc = yaml.safe_load(WORKFLOW.read_text())
    steps = [step for job in doc["jobs"].values() for step in job["steps"] if "run" in step and step["run"] != "make setup"]
    done = []
    for step in steps:
        proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workdir, env={**os.environ, **doc["env"], **env},
                              capture_output=True, text=True, timeout=900)
        done.append(proc)
        if proc.returncode != 0:
            break
    return done


def test_the_model_gate_workflow_passes_a_good_pick_and_fails_a_bad_one(tiny_model, tmp_path, harness_home):
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert "pull_request" in doc[True]  # YAML 1.1 reads the key `on` as True
    assert [s["run"].split()[0] for s in doc["jobs"]["gate"]["steps"] if "run" in s] == ["make", ".venv/bin/harness", ".venv/bin/harness"]
    (tmp_path / ".venv").symlink_to(REPO / ".venv")  # what `make setup` made (running it here would install this folder)
    sweep = sweep_file(tmp_path, tiny_model, "prgate", n_trials=2, trackers=("none",))
    summary = tmp_path / "step-summary.md"
    rules = tmp_path / "rules.yaml"
    env = {"SWEEP": str(sweep), "STUDY": "prgate", "RULES": str(rules), "GITHUB_STEP_SUMMARY": str(summary)}

    rules.write_text("rules:\n  - {metric: extraction.field_f1, threshold: 0.0, mode: point, min_items: 3}\nrequired_suites: [extraction]\n")
    passed = run_job(tmp_path, env)
    assert len(passed) == 2 and all(p.returncode == 0 for p in passed), [p.stderr[-2000:] for p in passed]
    assert "PASS" in summary.read_text()
    assert json.loads((tmp_path / "reports/gate/verdict.json").read_text())["passed"] is True

    # The same pull request with a bar the tiny model cannot clear: the gate step fails the job.
    rules.write_text("rules:\n  - {metric: extraction.field_f1, threshold: 0.99, mode: confident, min_items: 3}\nrequired_suites: [extraction]\n")
    failed = run_job(tmp_path, env)
    assert [p.returncode for p in failed] == [0, 1], [p.stderr[-2000:] for p in failed]
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "runs/prgate/journal.log")))
    assert len(optuna.load_study(study_name="prgate", storage=journal).trials) == 3  # the re-run resumed: base + 2, none re-trained
    assert summary.read_text().count("### harness gate") == 2 and "FAIL" in summary.read_text().split("### harness gate")[-1]
    junit = ET.parse(tmp_path / "reports/gate/junit.xml").getroot()
    assert junit.get("failures") == "1"
    assert json.loads((tmp_path / "reports/gate/verdict.json").read_text())["passed"] is False
