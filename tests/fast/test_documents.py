"""The JSON documents CI users consume: typed, versioned, their schemas published in docs/schemas/,
and read back strictly (an older layout read, a newer one or a malformed one refused in one line)."""

import json

import pandas as pd
import pytest
from conftest import REPO, run_cli

from harness.errors import UserError
from harness.store import documents
from harness.store.documents import BestDoc, ChampionDoc, GateVerdictDoc, ScoresDoc


def test_the_published_schemas_are_the_models_schemas():
    published = {p.name: json.loads(p.read_text()) for p in (REPO / "docs" / "schemas").glob("*.json")}
    assert published == documents.schemas(), "regenerate: python -m harness.store.documents docs/schemas"


def test_every_document_round_trips_through_its_file_with_its_version(tmp_path):
    verdict = GateVerdictDoc(candidate="r8", baseline="base", passed=False,
                             rules=[{"rule": "x.acc >= 0.5", "passed": False, "value": float("nan"), "ci_low": 0.1, "ci_high": 0.2,
                                     "threshold": 0.5, "detail": "no value"}])
    documents.write(tmp_path / "v.json", verdict)
    text = (tmp_path / "v.json").read_text()
    assert "NaN" not in text and json.loads(text)["schema_version"] == 1 and json.loads(text)["rules"][0]["value"] is None
    back = documents.read(tmp_path / "v.json", GateVerdictDoc)
    assert back.rules[0].value is None and back.baseline == "base" and not back.passed


def test_a_document_from_before_versioning_is_read_as_version_1(tmp_path):
    # scores.json exactly as harness wrote it before documents were versioned.
    old = {"backend": "hf", "dtype": "float32", "seconds": {"mmlu": 1.5}, "candidates": [{"name": "base", "hash": "h", "adapter": None}],
           "suites": [{"name": "mmlu", "version": "v", "n_items": 2, "headline": "acc"}],
           "scores": [{"candidate": "base", "suite": "mmlu", "metric": "acc", "value": 0.5, "stderr": 0.5, "ci_low": 0.0, "ci_high": 1.0, "n": 2}],
           "failures": []}
    (tmp_path / "scores.json").write_text(json.dumps(old))
    doc = documents.read(tmp_path / "scores.json", ScoresDoc)
    assert doc.schema_version == 1 and doc.scores[0].value == 0.5 and doc.adapters() == {"base": None}


def test_a_newer_or_malformed_document_is_refused_naming_the_file_and_field(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"schema_version": 7, "study": "s"}))
    with pytest.raises(UserError, match=r"best\.json: .*schema_version 7, written by a newer harness"):
        documents.read(path, BestDoc)
    champion = tmp_path / "champion.json"
    champion.write_text(json.dumps({"name": "n", "candidate": "c", "results": "/r", "mlflow": {"model": "n"}, "promoted_at": "t"}))
    with pytest.raises(UserError, match=r"champion\.json: mlflow\.tracking_uri_kind: Field required"):
        documents.read(champion, ChampionDoc)


def test_harness_gate_json_is_a_gate_verdict_document(tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    rows = [{"candidate": c, "candidate_hash": f"h{c}", "suite": "x", "suite_version": "v", "item_id": str(i), "prediction": "",
             "reference": "", "score": float(v), "metrics": json.dumps({"acc": float(v)}), "tokens": 1, "extra": "{}",
             "backend": "hf", "dtype": "float32"} for c, p in (("base", 0.5), ("r8", 0.9)) for i, v in enumerate([1] * int(40 * p) + [0] * (40 - int(40 * p)))]
    pd.DataFrame(rows).to_parquet(out / "items.parquet")
    documents.write(out / "scores.json", ScoresDoc(backend="hf", dtype="float32"))
    (tmp_path / "gate.yaml").write_text("rules:\n  - metric: x.acc\n    threshold: 0.6\n    mode: point\n")
    proc = run_cli("gate", "--rules", str(tmp_path / "gate.yaml"), "--results", str(out), "--json", str(tmp_path / "v.json"))
    assert proc.returncode == 0, proc.stderr
    verdict = documents.read(tmp_path / "v.json", GateVerdictDoc)
    assert verdict.candidate == "r8" and verdict.baseline == "base" and verdict.passed and verdict.rules[0].value == pytest.approx(0.9)


def test_a_version_2_pick_keeps_everything_but_its_old_untyped_forecast(tmp_path):
    """best.json before the forecast was typed (issue 29): its power-law forecast is dropped on reading."""
    old = {"schema_version": 2, "study": "s", "candidate": "trial-1", "objective": 0.8, "rule": "non-inferior", "beats_base": True,
           "vs_base": None, "forecast": {"metric": "x.acc", "model": "pow3", "points": [{"n": 16, "mean": 0.2, "ci": [0.1, 0.3]}],
                                         "plateau": {"estimate": 1.0, "ci": [1.0, 1.0]}, "at": [], "target": None, "warnings": []}}
    (tmp_path / "best.json").write_text(json.dumps(old))
    doc = documents.read(tmp_path / "best.json", BestDoc)
    assert doc.schema_version == 2 and doc.forecast is None and doc.candidate == "trial-1" and doc.beats_base
