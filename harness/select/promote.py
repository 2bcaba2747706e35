"""`harness gate --promote`: make a candidate that passed the gate the champion.

Two records, written only after every rule passed: the MLflow model registry (a model version with
the adapter and its results as artifacts, alias `champion` moved to it) and
`reports/<name>/champion.json`, which the next `harness gate` on the same study uses as its default
baseline. The champion's items are copied beside it (`champion-results/`): an eval directory is
overwritten by the next eval, and the baseline must not move with it. The previous champion is kept in
the new file as `previous`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from harness.runtime.files import publish_dir
from harness.store import documents, paths
from harness.store.documents import ChampionDoc, MlflowRecord
from harness.store.reading import current_champion


def _write_results(folder: Path, items: pd.DataFrame, scores_file: Path) -> Path:
    items.to_parquet(folder / paths.ITEMS, index=False)
    shutil.copy(scores_file, folder / paths.SCORES)
    return folder


def promote(name: str, candidate: str, adapter: str | None, items: pd.DataFrame, scores_file: Path, scores: dict) -> ChampionDoc:
    """Register `candidate` as model `name` version N with alias champion; returns champion.json's content.

    `items` are the candidate's own rows; `scores_file` the scores.json they came with."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = paths.mlflow_uri()
    client = MlflowClient(uri, registry_uri=uri)
    exp = client.get_experiment_by_name("harness-gate")
    exp_id = exp.experiment_id if exp else client.create_experiment("harness-gate", artifact_location=paths.mlflow_artifacts("harness-gate"))
    run = client.create_run(exp_id, run_name=f"promote {name}/{candidate}", tags={"harness.role": "promotion", "harness.candidate": candidate})
    run_id = run.info.run_id
    for key, value in scores.items():
        client.log_metric(run_id, key, value)
    if adapter:
        client.log_artifacts(run_id, adapter, artifact_path="adapter")
    with tempfile.TemporaryDirectory(prefix="harness-promote-") as tmp:
        client.log_artifacts(run_id, str(_write_results(Path(tmp), items, scores_file)), artifact_path="results")
    client.set_terminated(run_id)
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
            raise
    source = f"{run.info.artifact_uri}/{'adapter' if adapter else 'results'}"
    version = client.create_model_version(name, source, run_id=run_id, tags={"harness.candidate": candidate})
    client.set_registered_model_alias(name, "champion", version.version)
    # Only now, with the registry updated, does the baseline the next gate reads move.
    results = paths.champion_results_dir(name)
    with publish_dir(results, replace=True) as tmp:
        _write_results(tmp, items, scores_file)
    previous = current_champion(name)
    record = ChampionDoc(name=name, candidate=candidate, adapter=adapter, results=str(results.resolve()), scores=scores,
                         mlflow=MlflowRecord(tracking_uri_kind=uri.split(":", 1)[0], model=name, version=int(version.version), alias="champion"),
                         promoted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         previous=None if previous is None else previous.model_copy(update={"previous": None}))  # one level, not a chain
    documents.write(paths.champion_file(name), record)
    return record
