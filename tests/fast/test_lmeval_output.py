"""Results out in lm-eval's layout (`harness eval --lm-eval-output`), read back by lm-eval's file helpers,
`datasets`' json loader and `harness report --items`: a group suite split into its leaf tasks, metrics
with and without a filter, an adapter beside the base. (Against lm-eval's own output on the same tasks:
tests/integration/test_lmeval_tasks.py.)"""

import json
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
from conftest import run_cli
from lm_eval import utils as lm_utils

from harness.stats.summary import summarize
from harness.store import external, lmeval_output
from harness.store.results import ITEM_COLUMNS


def item(cand, suite, item_id, metrics, pred="x", ref="y", extra=None):
    return {"candidate": cand, "candidate_hash": f"h-{cand}", "suite": suite, "suite_version": "v1", "item_id": item_id,
            "prediction": pred, "reference": ref, "score": next(iter(metrics.values())), "metrics": json.dumps(metrics),
            "tokens": 3, "extra": json.dumps(extra or {}), "backend": "hf", "dtype": "float32"}


def scored_items():
    rng = np.random.default_rng(0)
    rows = []
    for cand in ("base", "my adapter/v2"):
        for i in range(7):  # a compiled suite: multiple choice with log-probs
            rows.append(item(cand, "mmlu", f"mmlu-{i}", {"acc": float(rng.random() < 0.5), "acc_norm": float(rng.random() < 0.5)},
                             pred="B", ref="B", extra={"logprobs": [-1.0, -0.5, -2.0]}))
        for task, n in (("arith_add", 5), ("arith_sub", 4)):  # a group of two lm-eval tasks, a metric with a filter
            for d in range(n):
                rows.append(item(cand, "arith", f"{task}/{d}", {"exact_match,strict": float(rng.random() < 0.6)}, pred=str(d),
                                 ref=str(d), extra={"response": f" {d} apples"}))
    return pd.DataFrame(rows, columns=ITEM_COLUMNS)


SUITES = [SimpleNamespace(name="mmlu", rows=[{"id": f"mmlu-{i}", "question": f"q{i}", "choices": ["A", "B", "C"]} for i in range(7)]),
          SimpleNamespace(name="arith", rows=[{"id": f"{t}/{d}", "_task": t, "_doc_id": d, "_doc": json.dumps({"q": f"{t} {d}"})}
                                              for t, n in (("arith_add", 5), ("arith_sub", 4)) for d in range(n)])]
CANDIDATES = [SimpleNamespace(name="base", adapter=None, backend="hf"),
              SimpleNamespace(name="my adapter/v2", adapter="/adapters/v2", backend="hf")]


def test_written_files_read_back_as_lm_eval_and_harness_read_them(tmp_path):
    items = scored_items()
    written = lmeval_output.write(tmp_path / "out", items, CANDIDATES, SUITES, "/models/base", "float32", when=datetime(2026, 12, 7, 1, 2, 3))
    names = [str(p.relative_to(tmp_path / "out")) for p in written]
    results = lm_utils.get_results_filenames([f"/{n}" for n in names])
    samples = lm_utils.get_sample_results_filenames([f"/{n}" for n in names])
    assert sorted(p.split("/")[1] for p in results) == ["base", "my adapter__v2"], "one folder per candidate, sanitized as lm-eval does"
    assert sorted({lm_utils.get_file_task_name(p.rsplit("/", 1)[1]) for p in samples}) == ["arith_add", "arith_sub", "mmlu"]
    # lm-eval's helper strips .jsonl only: a results file's datetime keeps its .json, as with lm-eval's own files
    assert {lm_utils.get_file_datetime(p.rsplit("/", 1)[1]).removesuffix(".json") for p in results + samples} == {"2026-12-07T01-02-03.000000"}

    summary = summarize(items)
    adapter = json.loads(next(p for p in written if p.parent.name == "my adapter__v2" and p.name.startswith("results_")).read_text())
    assert adapter["config"]["model_args"] == "pretrained=/models/base,peft=/adapters/v2,dtype=float32"
    assert adapter["group_subtasks"] == {"mmlu": [], "arith": ["arith_add", "arith_sub"]}
    assert adapter["n-samples"]["arith_add"] == {"original": 5, "effective": 5} and adapter["n-samples"]["mmlu"]["original"] == 7
    mine = summary[(summary.candidate == "my adapter/v2")]
    for (suite, metric), entry_name in ((("mmlu", "acc"), ("mmlu", "acc,none")), (("arith", "exact_match,strict"), ("arith", "exact_match,strict"))):
        row = mine[(mine.suite == suite) & (mine.metric == metric)].iloc[0]
        task, key = entry_name
        assert adapter["results"][task][key] == row.value and adapter["results"][task][key.replace(",", "_stderr,")] == row.stderr
        assert adapter["harness"]["ci"][task][key] == {"ci_low": row.ci_low, "ci_high": row.ci_high, "n": int(row.n)}
    leaf = items[(items.candidate == "my adapter/v2") & items.item_id.str.startswith("arith_sub/")]
    assert adapter["results"]["arith_sub"]["exact_match,strict"] == leaf.score.mean()
    assert adapter["configs"]["mmlu"]["output_type"] == "multiple_choice" and adapter["configs"]["arith_add"]["output_type"] == "generate_until"
    table = lm_utils.make_table(adapter)  # lm-eval's own results table, as its CLI prints it
    for task in ("mmlu", "arith_add", "arith_sub"):
        assert task in table, table
    assert "exact_match" in table and "strict" in table and "acc_norm" in table

    for path in samples:  # strict JSON, a line per document with lm-eval's keys; the doc of an lm-eval task as lm-eval had it
        lines = [json.loads(line) for line in (tmp_path / "out" / path.lstrip("/")).read_text().splitlines()]
        for line in lines:
            assert {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics", "doc_hash", "prompt_hash",
                    "target_hash"} <= set(line)
            assert all(m in line for m in line["metrics"])
        if "arith_add" in path:
            assert [x["doc_id"] for x in lines] == [0, 1, 2, 3, 4] and lines[2]["doc"] == {"q": "arith_add 2"}
            assert lines[0]["filter"] == "strict" and lines[0]["metrics"] == ["exact_match"] and lines[1]["resps"] == [[" 1 apples"]]

    back = external.read(tmp_path / "out")  # harness report --items reads it: same candidates, items and values
    assert set(back.candidate) == {"base", "my adapter__v2"} and len(back) == len(items)
    got = {(r.candidate, r.suite, r.item_id): json.loads(r.metrics) for r in back.itertuples()}
    for r in items.itertuples():
        task, _, doc = r.item_id.partition("/") if r.suite == "arith" else (r.suite, "", r.item_id)
        want = {k if "," in k else f"{k},none": v for k, v in json.loads(r.metrics).items()}
        assert got[(r.candidate.replace("/", "__"), task, doc)] == want


def test_eval_refuses_an_output_directory_it_cannot_write_before_scoring(tmp_path):
    (tmp_path / "taken").write_text("a file")
    proc = run_cli("eval", "--suite", "mmlu", "--lm-eval-output", str(tmp_path / "taken"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"error: --lm-eval-output {tmp_path / 'taken'}: exists and is not a directory"
