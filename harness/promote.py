"""`harness gate --promote`: make a candidate that passed the gate the champion.

Two records, written only after every rule passed: the MLflow model registry (a model version with
the adapter and its results as artifacts, alias `champion` moved to it) and
`reports/<name>/champion.json`, which the next `harness gate` on the same study uses as its default
baseline. The champion's items are copied beside it (`champion-results/`): an eval directory is
overwritten by the next eval, and the baseline must not move with it. The previous champion is kept in
the new file as `previous`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd

CHAMPION = "champion.json"


def champion_file(name: str) -> Path:
    return Path("reports") / name / CHAMPION


def current(name: str) -> dict | None:
    path = champion_file(name)
    return json.loads(path.read_text()) if path.is_file() else None


def _snapshot(name: str, candidate: str, results_dir: Path) -> Path:
    """Copy the champion's items and scores.json to reports/<name>/champion-results/ (replaced whole)."""
    from harness.score import ITEMS, SCORES

    final = champion_file(name).parent / "champion-results"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    items = pd.read_parquet(Path(results_dir) / ITEMS)
    items[items.candidate == candidate].to_parquet(tmp / ITEMS, index=False)
    shutil.copy(Path(results_dir) / SCORES, tmp / SCORES)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def promote(name: str, candidate: str, adapter: str | None, results_dir: Path, scores: dict) -> dict:
    """Register `candidate` as model `name` version N with alias champion; returns champion.json's content."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from harness.trackers import mlflow_uri

    client = MlflowClient(mlflow_uri(Path("runs")), registry_uri=mlflow_uri(Path("runs")))
    exp = client.get_experiment_by_name("harness-gate")
    exp_id = exp.experiment_id if exp else client.create_experiment(
        "harness-gate", artifact_location=(Path("runs") / "mlartifacts" / "harness-gate").resolve().as_uri())
    run = client.create_run(exp_id, run_name=f"promote {name}/{candidate}", tags={"harness.role": "promotion", "harness.candidate": candidate})
    run_id = run.info.run_id
    for key, value in scores.items():
        client.log_metric(run_id, key, value)
    if adapter:
        client.log_artifacts(run_id, adapter, artifact_path="adapter")
    client.log_artifacts(run_id, str(results_dir), artifact_path="results")
    client.set_terminated(run_id)
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
            raise
    source = f"{run.info.artifact_uri}/{'adapter' if adapter else 'results'}"
    version = client.create_model_version(name, source, run_id=run_id, tags={"harness.candidate": candidate})
    client.set_registered_model_alias(name, "champion", version.version)
    record = {"name": name, "candidate": candidate, "adapter": adapter, "results": str(_snapshot(name, candidate, results_dir).resolve()),
              "scores": scores, "mlflow": {"tracking_uri_kind": mlflow_uri(Path("runs")).split(":", 1)[0],
                                           "model": name, "version": int(version.version), "alias": "champion"},
              "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "previous": current(name)}
    if record["previous"]:
        record["previous"].pop("previous", None)  # one level of history, not a chain
    path = champion_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return record
