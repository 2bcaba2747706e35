"""`harness gate --promote`: a real MLflow tracking store and model registry (SQLite), only on a pass."""

import json

from conftest import gate_study


def test_promotion_only_on_pass_and_the_alias_moves(study_root):
    from mlflow import MlflowClient

    champion = study_root / "reports/s1/champion.json"
    client = lambda: MlflowClient(f"sqlite:///{study_root / 'runs/mlflow.db'}")  # noqa: E731
    proc = gate_study(study_root, "--candidate", "trial-2", "--promote")
    assert proc.returncode == 1 and "not promoted" in proc.stderr and not champion.exists()
    proc = gate_study(study_root, "--candidate", "trial-1", "--promote")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(champion.read_text())
    assert record["candidate"] == "trial-1" and record["mlflow"]["version"] == 1
    version = client().get_model_version_by_alias("s1", "champion")
    assert int(version.version) == 1 and version.tags["harness.candidate"] == "trial-1"
    files = {f.path for f in client().list_artifacts(version.run_id)}
    assert {"adapter", "results"} <= files
    # The champion is now the default baseline: trial-2 regresses on extraction against it.
    (study_root / "rules.yaml").write_text("rules:\n  - {metric: extraction.field_f1, max_regression: 0.05}\n")
    proc = gate_study(study_root, "--candidate", "trial-2", "--promote")
    assert proc.returncode == 1 and "trial-1" in json.loads((study_root / "verdict.json").read_text())["rules"][0]["detail"]
    assert int(client().get_model_version_by_alias("s1", "champion").version) == 1
    proc = gate_study(study_root, "--candidate", "trial-1", "--promote", "--baseline", "base")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(client().get_model_version_by_alias("s1", "champion").version) == 2
    record = json.loads(champion.read_text())
    assert record["mlflow"]["version"] == 2 and record["previous"]["mlflow"]["version"] == 1
