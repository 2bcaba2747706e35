"""lm-eval's own tasks as suites: task YAMLs in lm-eval's format over local JSONL, scored by
`harness eval --suite lm-eval:NAME` and by lm-eval's own CLI on the same model, item by item; and
lm-eval's own API client against `harness serve`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, free_port, run_cli

LM_EVAL = str(Path(sys.executable).with_name("lm_eval"))

MC_TASK = """task: harness_record_type
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/record_type.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Record: {{{{text}}}}\\nQuestion: is this record an invoice, an order or a shipment?\\nAnswer:"
doc_to_choice: ["invoice", "order", "shipment"]
doc_to_target: label
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
metadata: {{version: 1.0}}
"""

GEN_TASK = """task: harness_record_number
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/record_number.jsonl
test_split: test
output_type: generate_until
doc_to_text: "Record: {{{{text}}}}\\nCopy the digits of the record's number.\\nDigits:"
doc_to_target: "{{{{number.split('-')[1]}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 12, do_sample: false}}
filter_list:
  - name: get-number
    filter:
      - {{function: regex, regex_pattern: "(\\\\d{{5,6}})"}}
      - {{function: take_first}}
metric_list:
  - {{metric: exact_match, aggregation: mean, higher_is_better: true}}
metadata: {{version: 1.0}}
"""


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    """Two tasks in lm-eval's own format over local JSONL made from the extraction suite's records."""
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    rows = [json.loads(line) for line in (REPO / "suites/extraction/dev.jsonl").read_text().splitlines()]
    kinds = ["invoice", "order", "shipment"]
    with open(folder / "record_type.jsonl", "w") as fh:
        for row in rows[:24]:
            fh.write(json.dumps({"text": row["text"], "label": kinds.index(json.loads(row["answer"])["type"])}) + "\n")
    with open(folder / "record_number.jsonl", "w") as fh:
        for row in rows[60:72]:
            fh.write(json.dumps({"text": row["text"], "number": json.loads(row["answer"])["number"]}) + "\n")
    (folder / "record_type.yaml").write_text(MC_TASK.format(data=folder))
    (folder / "record_number.yaml").write_text(GEN_TASK.format(data=folder))
    return folder


def lm_eval_samples(out: Path, task: str) -> pd.DataFrame:
    files = sorted(out.rglob(f"samples_{task}_*.jsonl"))
    assert files, list(out.rglob("*"))
    return pd.DataFrame([json.loads(line) for line in files[-1].read_text().splitlines()])


def test_lm_eval_tasks_score_item_by_item_as_lm_eval_itself(smollm2_dir, task_dir, tmp_path, harness_home):
    proc = run_cli("eval", "--base", str(smollm2_dir), "--suite", "lm-eval:harness_record_type", "--suite", "lm-eval:harness_record_number",
                   "--include-path", str(task_dir), "--out", str(tmp_path / "ours"), "--lm-eval-output", str(tmp_path / "ours-lm"),
                   timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = pd.read_parquet(tmp_path / "ours/items.parquet")
    ours = ours[ours.candidate == "base"].assign(doc_id=lambda f: f.item_id.astype(int))
    metrics = ours.metrics.map(json.loads)

    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    lm = subprocess.run([LM_EVAL, "--model", "hf", "--model_args", f"pretrained={smollm2_dir},dtype=float32", "--tasks",
                         "harness_record_type,harness_record_number", "--include_path", str(task_dir), "--device", "cpu",
                         "--batch_size", "8", "--log_samples", "--output_path", str(tmp_path / "lm")],
                        capture_output=True, text=True, timeout=1800, env=env)
    assert lm.returncode == 0, lm.stderr[-3000:]

    for task, pairs in (("harness_record_type", [("acc", "acc"), ("acc_norm", "acc_norm")]),
                        ("harness_record_number", [("exact_match,get-number", "exact_match")])):
        theirs = lm_eval_samples(tmp_path / "lm", task).set_index("doc_id")
        mine = ours[ours.suite == task]
        assert len(mine) == len(theirs) > 0
        for our_name, their_name in pairs:
            a = metrics[mine.index].map(lambda m, k=our_name: m[k]).to_numpy()
            b = theirs.loc[mine.doc_id, their_name].astype(float).to_numpy()
            assert (a == b).mean() >= 0.99, (task, our_name, (a == b).mean())
            assert abs(a.mean() - b.mean()) <= 0.01, (task, our_name, a.mean(), b.mean())
    # The model really answered: some numbers extracted right, not a vacuous agreement on zeros.
    assert metrics[ours.suite == "harness_record_number"].map(lambda m: m["exact_match,get-number"]).mean() > 0
    assert_same_layout_as_lm_eval(tmp_path / "ours-lm", tmp_path / "lm", ours)


def test_a_builtin_task_that_needs_the_hub_fails_fast_offline(tmp_path):
    proc = run_cli("eval", "--suite", "lm-eval:arc_easy", "--out", str(tmp_path / "x"),
                   env={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lm-eval:arc_easy" in errors[0] and "needs the hub" in errors[0], proc.stderr[-2000:]


def test_lm_evals_own_api_client_scores_an_adapter_served_by_harness_serve(tiny_model, tiny_adapters, task_dir, tmp_path, harness_home):
    from harness.models import resolve_base
    from harness.score.backends import serve

    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed after the server stops
    proc, url = serve.start(resolve_base(str(tiny_model)), [("r8", tiny_adapters["r8"])], port=port, log=log)
    try:
        serve.wait_ready(url, proc)
        results = {}
        for model in ("r8", "base"):  # the adapter by its name, and the base model
            out = tmp_path / f"lm-{Path(model).name}"
            lm = subprocess.run([LM_EVAL, "--model", "local-completions", "--model_args",
                                 f"model={model},base_url={url}/v1/completions,tokenizer={tiny_model},num_concurrent=1,max_retries=1",
                                 "--tasks", "harness_record_type", "--include_path", str(task_dir), "--limit", "10",
                                 "--log_samples", "--output_path", str(out)],
                                capture_output=True, text=True, timeout=900,
                                env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
            assert lm.returncode == 0, lm.stderr[-3000:]
            results[model] = lm_eval_samples(out, "harness_record_type").set_index("doc_id")
    finally:
        serve.stop(proc)
        log.close()
    ours = run_cli("eval", "--base", str(tiny_model), "--adapter", f"r8={tiny_adapters['r8']}", "--suite", "lm-eval:harness_record_type",
                   "--include-path", str(task_dir), "--limit", "10", "--out", str(tmp_path / "ours"), timeout=900)
    assert ours.returncode == 0, ours.stderr[-3000:]
    items = pd.read_parquet(tmp_path / "ours/items.parquet")
    for candidate in ("r8", "base"):
        mine = items[items.candidate == candidate].assign(doc_id=lambda f: f.item_id.astype(int)).set_index("doc_id").sort_index()
        served = results[candidate].sort_index()
        # The served answers are the candidate's own: its per-choice log-likelihoods, within float tolerance.
        ours_ll = mine.extra.map(lambda e: json.loads(e)["logprobs"])
        theirs_ll = served.resps.map(lambda r: [float(c[0][0]) for c in r])
        diffs = [abs(a - b) for x, y in zip(ours_ll, theirs_ll, strict=True) for a, b in zip(x, y, strict=True)]
        assert max(diffs) < 2e-2, (candidate, max(diffs))
    base_ll = items[items.candidate == "base"].extra.map(lambda e: json.loads(e)["logprobs"]).tolist()
    r8_ll = results["r8"].sort_index().resps.map(lambda r: [float(c[0][0]) for c in r]).tolist()
    assert max(abs(a - b) for x, y in zip(base_ll, r8_ll, strict=True) for a, b in zip(x, y, strict=True)) > 0.1, \
        "the adapter's numbers, not the base's"


def assert_same_layout_as_lm_eval(ours_dir: Path, theirs_dir: Path, items: pd.DataFrame) -> None:
    """Our --lm-eval-output next to lm-eval's own --output_path/--log_samples on the same tasks: the same
    files found by lm-eval's file helpers, every key lm-eval writes, the same documents, values that agree;
    read back by `datasets`' json loader (as lm-eval's Hub card loads them) and by `harness report --items`."""
    import datasets
    from lm_eval import utils as lm_utils

    from harness.store import external

    def files(root):
        names = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
        return lm_utils.get_results_filenames([f"/{n}" for n in names]), lm_utils.get_sample_results_filenames([f"/{n}" for n in names])

    (our_results, our_samples), (their_results, their_samples) = files(ours_dir), files(theirs_dir)
    assert len(our_results) == len(their_results) == 1
    assert sorted(map(lm_utils.get_file_task_name, map(lambda f: Path(f).name, our_samples))) == \
        sorted(map(lm_utils.get_file_task_name, map(lambda f: Path(f).name, their_samples)))
    mine = json.loads((ours_dir / our_results[0].lstrip("/")).read_text())
    theirs = json.loads((theirs_dir / their_results[0].lstrip("/")).read_text())
    assert mine["model_name"] == "base" and "peft=" not in mine["config"]["model_args"]
    for key in ("results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config", "date",
                "task_hashes", "model_name", "model_name_sanitized"):
        assert key in mine and key in theirs, key
    for task, entry in theirs["results"].items():
        assert set(mine["results"][task]) == set(entry), (task, set(mine["results"][task]) ^ set(entry))
        for key, value in entry.items():
            if key not in ("alias", "name"):
                assert abs(mine["results"][task][key] - value) <= 0.02, (task, key, mine["results"][task][key], value)
        assert mine["n-samples"][task] == theirs["n-samples"][task]
        assert mine["configs"][task]["output_type"] == theirs["configs"][task]["output_type"]
    assert all(task in lm_utils.make_table(mine) for task in theirs["results"])  # lm-eval's own results table reads ours
    for task in theirs["results"]:
        our_file = next(ours_dir / f.lstrip("/") for f in our_samples if lm_utils.get_file_task_name(Path(f).name) == task)
        their_file = next(theirs_dir / f.lstrip("/") for f in their_samples if lm_utils.get_file_task_name(Path(f).name) == task)
        our_lines = [json.loads(line) for line in our_file.read_text().splitlines()]
        their_lines = [json.loads(line) for line in their_file.read_text().splitlines()]
        assert set(their_lines[0]) - {"arguments"} <= set(our_lines[0]), set(their_lines[0]) - set(our_lines[0])
        by_doc = {(x["doc_id"], x["filter"]): x for x in their_lines}
        assert set(by_doc) == {(x["doc_id"], x["filter"]) for x in our_lines}
        for line in our_lines:
            other = by_doc[(line["doc_id"], line["filter"])]
            assert line["doc"] == other["doc"] and line["target"] == other["target"]
            assert line["metrics"] == other["metrics"]
        loaded = datasets.load_dataset("json", data_files=str(our_file), split="train")
        assert loaded.num_rows == len(our_lines) and sorted(loaded["doc_id"]) == sorted(x["doc_id"] for x in our_lines)
    back = external.read(ours_dir)
    assert set(back.candidate) == {"base"} and len(back) == len(items)
    for row in back.itertuples():
        original = items[(items.suite == row.suite) & (items.item_id == row.item_id)]
        theirs_named = {lm_name: v for lm_name, v in json.loads(row.metrics).items()}
        ours_named = {k if "," in k else f"{k},none": v for k, v in json.loads(original.metrics.iloc[0]).items()}
        assert theirs_named == ours_named, (row.suite, row.item_id)
