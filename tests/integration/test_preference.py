"""Candidates beyond SFT on the tiny model: DPO and ORPO adapters, continuing an adapter, and merges
(peft's add_weighted_adapter), checked on the weights and the scores themselves."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, run_cli, run_cli_noting_imports
from safetensors.torch import load_file

from harness.config import TrainConfig
from harness.models import load_causal_lm, load_tokenizer, resolve_base
from harness.train import train
from harness.train.data import training_split

PREFS = REPO / "suites/extraction/train_prefs.jsonl"


def completion_logprob(model, tokenizer, prompt: list[dict], answer: list[dict]) -> float:
    """log p(answer | prompt) under the chat template, summed over the answer's tokens."""
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(prompt + answer, tokenize=False)
    assert full.startswith(head)
    ids = tokenizer(full, add_special_tokens=False, return_tensors="pt").input_ids
    start = len(tokenizer(head, add_special_tokens=False).input_ids)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    return float(logp[start - 1:].gather(1, targets[start - 1:, None]).sum())


def mean_margin(model, tokenizer, pairs) -> float:
    """Mean over pairs of log p(chosen | prompt) - log p(rejected | prompt)."""
    return float(np.mean([completion_logprob(model, tokenizer, p["prompt"], p["chosen"])
                          - completion_logprob(model, tokenizer, p["prompt"], p["rejected"]) for p in pairs]))


def with_adapter(base, adapter: Path | None):
    from peft import PeftModel

    model = load_causal_lm(base, "float32")
    return (PeftModel.from_pretrained(model, str(adapter)) if adapter else model).eval()


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_preference_training_grows_the_chosen_minus_rejected_margin(method, tiny_model, tmp_path, harness_home):
    base = resolve_base(str(tiny_model))
    cfg = TrainConfig(data=PREFS, method=method, n_samples=8, lora_r=8, learning_rate=2e-2, max_steps=8, batch_size=4, beta=0.1,
                      max_seq_len=192, dtype="float32")
    record = train(base, cfg, tmp_path / method)
    pairs, _ = training_split(PREFS, 8, preference=True)
    tokenizer = load_tokenizer(base)
    before = mean_margin(with_adapter(base, None), tokenizer, pairs)
    after = mean_margin(with_adapter(base, tmp_path / method), tokenizer, pairs)
    assert after > before + 0.5, (before, after)
    assert record["method"] == method and record["beta"] == 0.1 and record["data"]["rows"] == "preference pairs"
    assert record["data"]["n_samples"] == 8 and record["steps"] == 8
    assert math.isfinite(record["reward_margin"]["train"]) and record["reward_margin"]["heldout"] is not None
    saved = json.loads((tmp_path / method / "train.json").read_text())
    assert saved["reward_margin"] == record["reward_margin"]


def test_dpo_continues_the_init_adapter_against_itself(tiny_model, tiny_adapters, tmp_path, harness_home):
    base = resolve_base(str(tiny_model))
    sft = tiny_adapters["r8"]
    cfg = TrainConfig(data=PREFS, method="dpo", init_adapter=sft, n_samples=8, learning_rate=1e-9, max_steps=1, batch_size=4,
                      max_seq_len=192, dtype="float32")
    record = train(base, cfg, tmp_path / "dpo")
    start, end = load_file(sft / "adapter_model.safetensors"), load_file(tmp_path / "dpo/adapter_model.safetensors")
    assert start.keys() == end.keys(), "the same adapter, saved alone (not DPO's frozen reference copy)"
    assert all(torch.allclose(start[k], end[k], atol=1e-6) for k in start), "continued from the given weights"
    assert any(start[k].abs().max() > 1e-3 for k in start if "lora_B" in k), "a trained adapter (a fresh one has B = 0)"
    # The reference is the init adapter itself: at step 1 the policy equals it, so the DPO loss is ln 2.
    assert abs(record["loss_curve"][0][1] - math.log(2)) < 1e-3, record["loss_curve"]
    assert record["init_adapter"]["r"] == 8 and "init_adapter" in record["heldout_loss"]
    assert not (tmp_path / "dpo/ref").exists()


def lora_deltas(adapter: Path) -> dict[str, torch.Tensor]:
    """module -> B @ A * alpha / r, the weight change the adapter makes."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    weights = load_file(adapter / "adapter_model.safetensors")
    scale = config["lora_alpha"] / (math.sqrt(config["r"]) if config.get("use_rslora") else config["r"])
    return {k.removesuffix(".lora_A.weight"): weights[k.replace("lora_A", "lora_B")].double() @ weights[k].double() * scale
            for k in weights if k.endswith("lora_A.weight")}


@pytest.fixture(scope="module")
def two_rank8(tiny_model, tiny_adapters, tmp_path_factory) -> list[Path]:
    second = tmp_path_factory.mktemp("r8b") / "r8b"
    cfg = TrainConfig(data=REPO / "suites/extraction/train.jsonl", n_samples=32, lora_r=8, learning_rate=2e-2, max_steps=3,
                      batch_size=8, max_seq_len=192, seed=7, dtype="float32")
    train(resolve_base(str(tiny_model)), cfg, second)
    return [tiny_adapters["r8"], second]


def test_cat_stacks_ranks_and_adds_the_deltas_and_linear_of_one_is_itself(tiny_model, two_rank8, tmp_path):
    a, b = two_rank8
    proc = run_cli("merge", "--base", str(tiny_model), "--adapter", f"a={a}", "--adapter", f"b={b}", "--method", "cat",
                   "--out", str(tmp_path / "cat"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "cat/adapter_config.json").read_text())["r"] == 16
    merged, da, db = lora_deltas(tmp_path / "cat"), lora_deltas(a), lora_deltas(b)
    assert merged.keys() == da.keys()
    assert max(float((merged[k] - da[k] - db[k]).abs().max()) for k in merged) < 1e-5
    record = json.loads((tmp_path / "cat/merge.json").read_text())
    assert record["method"] == "cat" and [p["name"] for p in record["parents"]] == ["a", "b"] and record["weights"] == [1.0, 1.0]

    proc = run_cli("merge", "--base", str(tiny_model), "--adapter", f"a={a}", "--method", "linear", "--weights", "1.0",
                   "--out", str(tmp_path / "one"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = lora_deltas(tmp_path / "one")
    assert max(float((one[k] - da[k]).abs().max()) for k in one) < 1e-5


def test_merge_rules_are_exit_2_before_any_model_loads(tiny_model, tiny_adapters, tmp_path):
    from peft import LoraConfig, get_peft_model

    rs = tmp_path / "rslora"
    model = get_peft_model(load_causal_lm(resolve_base(str(tiny_model)), "float32"),
                           LoraConfig(r=8, lora_alpha=16, use_rslora=True, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(rs)
    cases = [
        (["--adapter", f"a={tiny_adapters['r8']}", "--adapter", f"rs={rs}", "--method", "cat"], ["--adapter rs", "use_rslora"]),
        (["--adapter", f"a={tiny_adapters['r8']}", "--adapter", f"b={tiny_adapters['r4']}", "--method", "ties", "--density", "0.5"],
         ["--method ties", "equal rank", "a r=8", "b r=4"]),
        (["--adapter", f"a={tiny_adapters['r8']}", "--adapter", f"b={tiny_adapters['r8']}", "--method", "dare_linear"], ["--density"]),
        (["--adapter", f"a={tiny_adapters['r8']}", "--method", "svd", "--svd-rank", "4"], ["--method svd", "two or more"]),
        (["--adapter", f"a={tiny_adapters['r8']}", "--method", "avg"], ["--method avg"]),
        (["--adapter", f"a={tiny_adapters['r8']}", "--adapter", f"b={tiny_adapters['r4']}", "--method", "cat", "--weights", "1"],
         ["--weights", "1 weights for 2"]),
    ]
    for argv, expect in cases:
        proc, loaded = run_cli_noting_imports("merge", "--base", tiny_model, *argv, "--out", tmp_path / "never", cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert loaded == [], (argv, loaded)
        errors = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and all(e in errors[0] for e in expect), (expect, errors)
    assert not (tmp_path / "never").exists()


def test_svd_dare_and_magnitude_prune_merges_do_what_they_say(tiny_model, two_rank8, tmp_path):
    a, b = two_rank8

    def merge(name, *argv):
        proc = run_cli("merge", "--base", str(tiny_model), "--adapter", f"a={a}", "--adapter", f"b={b}", *argv, "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr[-3000:]
        return load_file(tmp_path / name / "adapter_model.safetensors")

    # svd re-factorises the summed delta at --svd-rank: the best rank-4 approximation of it (Eckart-Young).
    merge("svd", "--method", "svd", "--svd-rank", "4")
    assert json.loads((tmp_path / "svd/adapter_config.json").read_text())["r"] == 4
    merged, da, db = lora_deltas(tmp_path / "svd"), lora_deltas(a), lora_deltas(b)
    for module, delta in merged.items():
        total = da[module] + db[module]
        best = torch.linalg.svdvals(total)[4:].square().sum().sqrt()
        assert float(torch.linalg.norm(delta - total)) <= 1.001 * float(best) + 1e-9, module
    # dare_linear and magnitude_prune keep a --density share of each parent's entries: all of them is a
    # linear merge; half of them zeroes the entries both parents dropped (about a quarter).
    linear = merge("linear", "--method", "linear")
    for method in ("dare_linear", "magnitude_prune"):
        whole, half = merge(f"{method}1", "--method", method, "--density", "1.0"), merge(f"{method}05", "--method", method, "--density", "0.5")
        assert all(torch.equal(whole[k], linear[k]) for k in linear), method
        a_keys = [k for k in half if "lora_A" in k]
        zeros = sum(int((half[k] == 0).sum()) for k in a_keys) / sum(half[k].numel() for k in a_keys)
        assert 0.18 < zeros < 0.32, (method, zeros)
        assert json.loads((tmp_path / f"{method}05/merge.json").read_text())["density"] == 0.5


@pytest.mark.needs("vllm")
def test_a_merged_adapter_scores_the_same_in_hf_and_vllm(tiny_model, two_rank8, tmp_path):
    proc = run_cli("merge", "--base", str(tiny_model), "--adapter", f"a={two_rank8[0]}", "--adapter", f"b={two_rank8[1]}",
                   "--method", "cat", "--out", str(tmp_path / "cat"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli("doctor", "--parity", "--base", str(tiny_model), "--adapter", f"cat={tmp_path / 'cat'}", timeout=900)
    assert proc.returncode == 0 and "16/16 checks agree" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_a_sweep_over_methods_with_a_merge_reports_every_kind(tiny_model, tmp_path, harness_home):
    import pandas as pd
    from conftest import sweep_file

    cfg = sweep_file(tmp_path, tiny_model, "kinds", n_trials=2, trackers=("mlflow",))
    text = cfg.read_text().replace("train: {data: ", f"train: {{preference_data: {PREFS}, data: ")
    space = """space:
  lora_r: {type: categorical, choices: [4]}
  learning_rate: {type: categorical, choices: [0.005]}
  n_samples: {type: categorical, choices: [16]}
  method: {type: categorical, choices: [sft, orpo]}
sampler: {name: grid}
merge: {top_k: 2, methods: [cat, ties]}
"""
    cfg.write_text(text[:text.index("space:")] + space + text[text.index("suites:"):].replace("sampler: {name: random, seed: 0}\n", ""))
    proc = run_cli("sweep", str(cfg), cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli("report", "kinds", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = pd.read_csv(tmp_path / "reports/kinds/leaderboard.csv")
    assert sorted(board.kind) == ["base", "merge", "merge", "orpo", "sft"], board.to_string()
    merges = board[board.kind == "merge"].set_index("lora_r")
    assert sorted(merges.index) == [4, 8], "ties keeps the parents' rank 4, cat stacks them to 8"
    for _, merged in merges.iterrows():  # a merge costs what its parents cost
        assert set(merged.parents.split(", ")) == {"trial-1", "trial-2"} and merged.n_samples == 32
    assert board.loc[board.kind != "base", "extraction"].notna().all(), "every candidate scored"
    html = (tmp_path / "reports/kinds/index.html").read_text()
    assert all(f"<td>{kind}</td>" in html for kind in ("sft", "orpo", "merge"))


def test_init_best_sft_starts_dpo_trials_from_the_best_sft_adapter(tiny_model, tmp_path, harness_home):
    import optuna
    from conftest import sweep_file

    from harness.store import study as studies

    cfg = sweep_file(tmp_path, tiny_model, "chain", n_trials=3, trackers=("none",))
    text = cfg.read_text().replace("train: {data: ", f"train: {{init: best_sft, preference_data: {PREFS}, data: ")
    space = """space:
  lora_r: {type: categorical, choices: [4, 8]}
  learning_rate: {type: categorical, choices: [0.005]}
  n_samples: {type: categorical, choices: [16]}
  method: {type: categorical, choices: [sft, dpo]}
"""
    cfg.write_text(text[:text.index("space:")] + space + text[text.index("suites:"):])
    proc = run_cli("sweep", str(cfg), cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = optuna.load_study(study_name="chain", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/chain/journal.log")))).get_trials()
    done = {f"trial-{t.number}": t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and not studies.is_base_trial(t)}
    chained = [t for t in done.values() if t.user_attrs["kind"] == "sft→dpo"]
    assert chained, "a dpo trial after an sft one continues the sft adapter"
    for t in chained:
        parent = done[t.user_attrs["parents"][0]]
        assert parent.user_attrs["kind"] == "sft" and parent.datetime_complete < t.datetime_start
        earlier = [s for s in done.values() if s.user_attrs["kind"] == "sft" and s.datetime_complete < t.datetime_start]
        assert parent.values[0] == max(s.values[0] for s in earlier), "the best sft trial complete at the time"
        assert studies.params_of(t)["lora_r"] == parent.params["lora_r"] and studies.params_of(t)["n_samples"] == 32
        record = json.loads((tmp_path / f"runs/chain/trial-{t.number}/adapter/train.json").read_text())
        assert record["method"] == "dpo" and record["init_adapter"]["r"] == parent.params["lora_r"]
