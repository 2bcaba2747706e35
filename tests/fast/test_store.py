"""The store: one version of each (candidate, suite) per directory, and scores.json derived from the items."""

import json

import pandas as pd

from harness.store import results as store
from harness.store.documents import ScoredCandidate, ScoredSuite, SuiteFailureRecord
from harness.store.results import ScoredRun


def rows(candidate: str, content: str, suite: str, version: str, items: range, score: float) -> pd.DataFrame:
    return pd.DataFrame([{"candidate": candidate, "candidate_hash": content, "suite": suite, "suite_version": version,
                          "item_id": str(i), "prediction": "", "reference": "", "score": score,
                          "metrics": json.dumps({"acc": score}), "tokens": 1, "extra": "{}", "backend": "hf", "dtype": "float32"}
                         for i in items])


def test_rescored_items_replace_old_rows_and_other_weights_under_one_name_supersede_them(tmp_path):
    store.merge_items(tmp_path, pd.concat([rows("a", "h1", "mmlu", "v1", range(10), 0.0), rows("b", "hb", "mmlu", "v1", range(10), 0.0)]))
    store.merge_items(tmp_path, rows("a", "h1", "mmlu", "v1", range(5, 15), 1.0))  # same model: item-level merge
    items = store.read_items(tmp_path)
    a = items[items.candidate == "a"].set_index("item_id")["score"]
    assert len(a) == 15 and a["0"] == 0.0 and a["7"] == 1.0
    store.merge_items(tmp_path, rows("a", "h2", "mmlu", "v1", range(3), 1.0))  # "a" is another model now
    items = store.read_items(tmp_path)
    assert set(items[items.candidate == "a"].candidate_hash) == {"h2"} and (items.candidate == "a").sum() == 3
    assert (items.candidate == "b").sum() == 10, "other candidates are untouched"
    store.merge_items(tmp_path, rows("b", "hb", "mmlu", "v2", range(4), 1.0))  # the suite changed
    assert set(store.read_items(tmp_path).query("candidate == 'b'").suite_version) == {"v2"}


def test_scores_json_describes_everything_the_items_hold(tmp_path):
    first = ScoredRun([ScoredCandidate(name="base", hash="h0")], [ScoredSuite(name="mmlu", version="v1", n_items=8, headline="acc")],
                      "hf", "float32", frames=[rows("base", "h0", "mmlu", "v1", range(8), 0.0)])
    store.record(tmp_path, first)
    second = ScoredRun([ScoredCandidate(name="r8", hash="h8", adapter="/a")], [], "hf", "float32",
                       frames=[rows("r8", "h8", "mmlu", "v1", range(8), 1.0)], failures=[SuiteFailureRecord(suite="x", reason="boom")])
    doc = store.record(tmp_path, second).model_dump(mode="json")
    assert json.loads((tmp_path / "scores.json").read_text()) == doc
    assert {c["name"]: c["adapter"] for c in doc["candidates"]} == {"base": None, "r8": "/a"}
    assert {c["name"]: c["backend"] for c in doc["candidates"]} == {"base": "hf", "r8": "hf"}  # what the items say scored them
    assert doc["suites"] == [{"name": "mmlu", "version": "v1", "n_items": 8, "headline": "acc"}]
    assert {(s["candidate"], s["value"]) for s in doc["scores"]} == {("base", 0.0), ("r8", 1.0)}
    assert doc["failures"] == [{"suite": "x", "reason": "boom", "candidates": []}]
    assert doc["schema_version"] == 2
