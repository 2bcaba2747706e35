"""Scoring: lm-eval builds the requests, our backend answers them, per-item rows come out."""

import json
from pathlib import Path

import pandas as pd
from conftest import REPO, build_tiny_llama, run_cli

from harness.models import resolve_base
from harness.score import eval_command
from harness.score.backends import make_candidate
from harness.score.backends.hf import HFBackend
from harness.score.suites import load_suite

EXTRACTION = REPO / "suites/extraction/suite.yaml"


def small_extraction(tmp_path: Path, n: int = 4, max_tokens: int = 12) -> Path:
    """A copy of the extraction suite with n dev rows and short generations (tiny-model speed)."""
    folder = tmp_path / "extraction"
    folder.mkdir(exist_ok=True)
    rows = (REPO / "suites/extraction/dev.jsonl").read_text().splitlines()[:n]
    (folder / "dev.jsonl").write_text("\n".join(rows) + "\n")
    text = EXTRACTION.read_text().replace("max_tokens: 96", f"max_tokens: {max_tokens}")
    (folder / "suite.yaml").write_text(text)
    return folder / "suite.yaml"


def candidates_for(base, adapters):
    return [make_candidate("base", base)] + [make_candidate(n, base, p) for n, p in adapters.items()]


def test_three_candidates_load_the_base_once(tiny_model, tiny_adapters, tmp_path, harness_home):
    base = resolve_base(str(tiny_model))
    cands = candidates_for(base, tiny_adapters)
    suites = [load_suite("mmlu", 6), load_suite(str(small_extraction(tmp_path)))]
    loads = HFBackend.base_loads
    scored, _ = eval_command.run(base, cands, suites, "hf", out_dir=tmp_path / "out")
    items, failures = scored.items, scored.failures
    assert HFBackend.base_loads == loads + 1
    assert not failures
    assert len(items) == 3 * (6 + 4)
    assert set(items["candidate"]) == {"base", "r8", "r4"}
    # The adapters really are applied: their log-likelihoods differ from the base's.
    mmlu = items[items.suite == "mmlu"].set_index(["candidate", "item_id"])["extra"].map(lambda e: json.loads(e)["logprobs"])
    assert any(mmlu[("base", i)] != mmlu[("r8", i)] for i in items[items.suite == "mmlu"].item_id.unique())
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    acc = [s for s in scores["scores"] if s["candidate"] == "base" and s["suite"] == "mmlu" and s["metric"] == "acc"][0]
    assert acc["n"] == 6 and acc["ci_low"] <= acc["value"] <= acc["ci_high"]
    on_disk = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert {"candidate", "candidate_hash", "suite", "suite_version", "item_id", "prediction", "reference", "score", "tokens"} <= set(on_disk.columns)


def test_rerun_hits_the_cache_and_data_changes_invalidate_it(tiny_model, tiny_adapters, tmp_path, harness_home):
    base = resolve_base(str(tiny_model))
    cands = candidates_for(base, tiny_adapters)
    suite_file = small_extraction(tmp_path, n=6, max_tokens=24)
    first = eval_command.run(base, cands, [load_suite("mmlu", 20), load_suite(str(suite_file))], "hf", out_dir=tmp_path / "a")[0].items
    loads = HFBackend.base_loads
    # Not timed (speed is measured in bench/): a fully cached re-run answers without loading the model.
    again = eval_command.run(base, cands, [load_suite("mmlu", 20), load_suite(str(suite_file))], "hf", out_dir=tmp_path / "b")[0].items
    assert HFBackend.base_loads == loads, "a fully cached re-run must not even load the model"
    cols = ["candidate", "suite", "item_id", "prediction", "score"]
    pd.testing.assert_frame_equal(first[cols].reset_index(drop=True), again[cols].reset_index(drop=True))

    # Change one item's text: the suite version changes and that item is recomputed.
    data = suite_file.parent / "dev.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[0]["text"] = rows[0]["text"].replace("Order", "ORDER").replace("Invoice", "INVOICE") + " Urgent."
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    changed = load_suite(str(suite_file))
    assert changed.version != load_suite(str(REPO / "suites/extraction/suite.yaml")).version
    eval_command.run(base, cands, [changed], "hf", out_dir=tmp_path / "c")
    assert HFBackend.base_loads == loads + 1


def test_item_choices_agree_with_lm_evals_own_hf_model(tiny_model, tiny_adapters, tmp_path, harness_home):
    """Same task object, lm-eval's HFLM (PeftModel instance) vs our backend: identical choices."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from peft import PeftModel

    from harness.models import load_causal_lm, load_tokenizer
    from harness.score.suites.compiled import build_task

    base = resolve_base(str(tiny_model))
    for fmt in ("mmlu", "mmlu_letter"):
        suite = load_suite(fmt, 24)
        ours = eval_command.run(base, candidates_for(base, tiny_adapters), [suite], "hf", out_dir=tmp_path / fmt)[0].items
        for name in ("base", "r8"):
            model = load_causal_lm(base)
            if name != "base":
                model = PeftModel.from_pretrained(model, tiny_adapters[name])
            lm = HFLM(pretrained=model, tokenizer=load_tokenizer(base), batch_size=8)
            out = lm_eval.simple_evaluate(model=lm, tasks=[build_task(suite)], log_samples=True, cache_requests=False)
            theirs = {str(s["doc"]["id"]): max(range(4), key=lambda i: s["filtered_resps"][i][0]) for s in out["samples"][f"harness_{suite.name}"]}
            mine = ours[ours.candidate == name].set_index("item_id")["extra"].map(lambda e: max(range(4), key=json.loads(e)["logprobs"].__getitem__))
            assert len(theirs) == 24
            assert all(mine[i] == theirs[i] for i in theirs), (fmt, name)
            their_ll = {str(s["doc"]["id"]): [r[0] for r in s["filtered_resps"]] for s in out["samples"][f"harness_{suite.name}"]}
            my_ll = ours[ours.candidate == name].set_index("item_id")["extra"].map(lambda e: json.loads(e)["logprobs"])
            worst = max(abs(a - b) for i in theirs for a, b in zip(my_ll[i], their_ll[i]))
            assert worst < 1e-3, worst


def test_cli_errors_are_one_line_and_keep_results(tiny_model, smollm2_dir, tiny_adapters, tmp_path, harness_home):
    out = tmp_path / "out"
    ok = run_cli("eval", "--base", str(tiny_model), "--suite", "mmlu", "--limit", "4", "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    before = (out / "items.parquet").read_bytes()

    def fails(*args, expect: str):
        proc = run_cli("eval", "--base", str(tiny_model), "--out", str(out), *args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
        assert len(lines) == 1 and expect in lines[0], proc.stderr
        assert (out / "items.parquet").read_bytes() == before

    fails("--suite", "no_such_suite", expect="unknown suite")
    missing = small_extraction(tmp_path)
    (missing.parent / "dev.jsonl").unlink()
    fails("--suite", "mmlu", "--suite", str(missing), expect="dev.jsonl: no such data file")
    bad = small_extraction(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path)
    lines = (bad.parent / "dev.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-5]
    (bad.parent / "dev.jsonl").write_text("\n".join(lines) + "\n")
    fails("--suite", str(bad), expect="line 3: malformed JSON")
    other = build_tiny_llama(tmp_path / "other-base", smollm2_dir, seed=7)
    proc = run_cli("eval", "--base", str(other), "--adapter", f"r8={tiny_adapters['r8']}", "--suite", "mmlu", "--limit", "4", "--out", str(out))
    assert proc.returncode == 2 and "trained for base" in proc.stderr and str(other) in proc.stderr, proc.stderr
    assert (out / "items.parquet").read_bytes() == before


def test_engine_failure_marks_the_suite_failed_restarts_once_and_keeps_other_suites(tiny_model, tmp_path, harness_home):
    """A real HF backend whose model dies mid-evaluation (its weights are dropped): the suite is
    retried once on a fresh engine; if the engine keeps dying, the suite is failed with the reason."""
    base = resolve_base(str(tiny_model))
    cands = [make_candidate("base", base)]
    backend = HFBackend(base, cands)
    real_close, state = backend.close, {"closes": 0}

    def dying_close():
        state["closes"] += 1
        real_close()

    backend.close = dying_close
    backend._ensure_loaded()
    backend._models[:] = [None]  # the engine is gone, but the backend believes it is loaded ...
    backend._ensure_loaded = lambda: None  # ... and cannot restart: every request errors
    scored, _ = eval_command.run(base, cands, [load_suite("mmlu", 4)], "hf", out_dir=tmp_path / "o", backend=backend)
    items, failures = scored.items, scored.failures
    assert state["closes"] == 2, "one restart, then failure"
    assert [f.suite for f in failures] == ["mmlu"] and "NoneType" in failures[0].reason
    assert len(items) == 0 and not (tmp_path / "o" / "items.parquet").exists()
    scores = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert scores["failures"][0]["suite"] == "mmlu" and scores["scores"] == []


def test_a_killed_eval_keeps_the_answers_it_computed(tiny_model, tmp_path, harness_home):
    """The cache commits every 32 answers (or 10 s): a SIGKILL loses at most that, not the suite."""
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    suite = small_extraction(tmp_path, n=200, max_tokens=16)
    cmd = [sys.executable, "-m", "harness.cli", "eval", "--base", str(tiny_model), "--suite", str(suite), "--out", str(tmp_path / "o")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = harness_home / "cache" / "responses.sqlite"

    def cached() -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            try:
                return con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            except sqlite3.OperationalError:  # the table is not there yet
                return 0

    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and cached() < 32:
        time.sleep(0.05)
    assert proc.poll() is None, "the eval ended before its first commit: answers are kept only at the end"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = cached()
    assert 32 <= kept < 200, kept
    rerun = run_cli(*cmd[3:], timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert cached() == 200  # the rest was answered; what was kept was not answered again


def test_a_failed_rerun_erases_nothing_and_scores_json_describes_the_items(tiny_model, tiny_adapters, tmp_path, harness_home):
    base = resolve_base(str(tiny_model))
    cands = candidates_for(base, tiny_adapters)
    out = tmp_path / "out"
    extraction = small_extraction(tmp_path)
    eval_command.run(base, cands, [load_suite("mmlu", 4), load_suite(str(extraction))], "hf", out_dir=out)
    before = pd.read_parquet(out / "items.parquet")
    # The same suite again, now with a metric that fails on real answers (its check on a sample passes).
    (extraction.parent / "m.py").write_text("def picky(prediction, reference):\n"
                                            "    if prediction != reference:\n        raise ValueError('no')\n    return 1.0\n")
    extraction.write_text(extraction.read_text().replace("  - name: json_exact_match\n    as: exact_match", "  - {function: 'm.py:picky'}"))
    failures = eval_command.run(base, cands, [load_suite("mmlu", 6), load_suite(str(extraction))], "hf", out_dir=out)[0].failures
    assert [f.suite for f in failures] == ["extraction"]
    after = pd.read_parquet(out / "items.parquet")
    kept = after[after.suite == "extraction"].sort_values(["candidate", "item_id"]).reset_index(drop=True)
    assert kept.equals(before[before.suite == "extraction"].sort_values(["candidate", "item_id"]).reset_index(drop=True))
    assert (after.suite == "mmlu").sum() == 6 * len(cands)  # the suite that worked was re-scored (4 -> 6 items)
    scores = json.loads((out / "scores.json").read_text())
    described = {(r["candidate"], r["suite"]) for r in scores["scores"]}
    assert described == {(c, s) for c, s in after[["candidate", "suite"]].itertuples(index=False)}
    assert {s["name"]: s["n_items"] for s in scores["suites"]} == {"mmlu": 6, "extraction": 4}
    assert scores["failures"][0]["suite"] == "extraction"


def test_one_model_named_two_ways_is_one_base(smollm2_dir, tmp_path, harness_home):
    from harness.config import TrainConfig
    from harness.train import train

    by_name, by_path = resolve_base("default"), resolve_base(str(smollm2_dir))
    assert by_name.identity == by_path.identity and by_name.identity.startswith("dir:")
    assert make_candidate("base", by_name).hash == make_candidate("base", by_path).hash
    adapter = tmp_path / "a"
    train(by_name, TrainConfig(data=REPO / "suites/extraction/train.jsonl", n_samples=8, lora_r=4, max_steps=1, max_seq_len=128,
                               dtype="float32"), adapter)
    assert make_candidate("a", by_path, adapter).hash == make_candidate("a", by_name, adapter).hash


def test_eval_cache_and_dtype_options_through_the_cli(tiny_model, tiny_adapters, tmp_path, harness_home):
    """A re-run answers from the cache, --no-cache recomputes (the same answers), --dtype bfloat16 scores
    in bf16: recorded as such and never answered from float32's cache."""
    args = ["eval", "--base", str(tiny_model), "--adapter", f"r8={tiny_adapters['r8']}", "--suite", "mmlu", "--limit", "4"]
    runs = {name: run_cli(*args, *extra, "--out", str(tmp_path / name))
            for name, extra in (("first", []), ("again", []), ("fresh", ["--no-cache"]), ("bf16", ["--dtype", "bfloat16"]))}
    assert all(p.returncode == 0 for p in runs.values()), {k: p.stderr[-1500:] for k, p in runs.items()}

    def cache_note(name):
        return runs[name].stderr.split("mmlu: 4 items x 2 candidates in ")[1].split("(")[1].split(")")[0]

    assert cache_note("first") == "0 of 32 answers from the cache"  # 4 items x 4 choices x 2 candidates
    assert cache_note("again") == "32 of 32 answers from the cache"
    assert cache_note("fresh") == "cache off" and cache_note("bf16") == "0 of 32 answers from the cache"
    items = {name: pd.read_parquet(tmp_path / name / "items.parquet") for name in runs}
    cols = ["candidate", "item_id", "prediction", "score"]
    pd.testing.assert_frame_equal(items["first"][cols], items["fresh"][cols])
    assert set(items["first"].dtype) == {"float32"} and set(items["bf16"].dtype) == {"bfloat16"}
