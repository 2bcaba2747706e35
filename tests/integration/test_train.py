"""Training one candidate, on the tiny real Llama and the real extraction data."""

import json
import math
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from conftest import REPO, build_tiny_llama, run_cli

from harness.config import TrainConfig
from harness.models import load_causal_lm, load_tokenizer, resolve_base
from harness.runtime.environment import bf16_supported
from harness.store.paths import TRAIN_RECORD
from harness.train import TrainingFailed, train
from harness.train.data import training_split
from harness.train.trainers import make_trainer

DATA = REPO / "suites" / "extraction" / "train.jsonl"


def tiny_cfg(**kw) -> TrainConfig:
    values = dict(data=DATA, n_samples=64, lora_r=8, learning_rate=2e-2, epochs=1, batch_size=8, max_seq_len=192, dtype="float32")
    return TrainConfig(**{**values, **kw})


def test_adapter_trained_on_64_rows_lowers_heldout_loss(tiny_model, tmp_path, harness_home):
    out = tmp_path / "adapter"
    record = train(resolve_base(str(tiny_model)), tiny_cfg(), out)
    assert record["status"] == "ok" and record["steps"] == 8
    loss = record["heldout_loss"]
    assert loss["adapter"] < loss["base"] - 0.2, loss
    # The base's held-out loss is kept for the next trial on the same base, data and settings.
    [kept] = (harness_home / "heldout-loss").glob("*.json")
    assert json.loads(kept.read_text())["eval_loss"] == loss["base"]
    kept.write_text(json.dumps({"eval_loss": 123.0}))  # a marker: the next trial must read it, not recompute
    again = train(resolve_base(str(tiny_model)), tiny_cfg(n_samples=8, lora_r=4, learning_rate=1e-3), tmp_path / "again")
    assert again["heldout_loss"]["base"] == 123.0
    other = train(resolve_base(str(tiny_model)), tiny_cfg(n_samples=8, max_seq_len=128), tmp_path / "other")
    assert other["heldout_loss"]["base"] != 123.0  # other settings, another held-out loss
    saved = json.loads((out / TRAIN_RECORD).read_text())
    assert saved["data"]["sha256"] and saved["tokens_seen"] > 0 and saved["tokens_per_s"] > 0
    assert saved["base"]["identity"].startswith("dir:")
    assert len(saved["loss_curve"]) == 8
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()

    from peft import PeftModel

    model = PeftModel.from_pretrained(load_causal_lm(resolve_base(str(tiny_model))), out)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "the adapter learned nothing"


def test_labels_mask_the_prompt(tiny_model, tmp_path):
    base = resolve_base(str(tiny_model))
    tokenizer = load_tokenizer(base)
    rows, _ = training_split(DATA, 4)
    trainer = make_trainer(load_causal_lm(base), tokenizer, tiny_cfg(n_samples=4), "float32", rows, [], tmp_path, [])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    for i in range(2):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        trained = tokenizer.decode(ids[labels != -100])
        masked = tokenizer.decode(ids[(labels == -100) & (batch["attention_mask"][i] == 1)])
        answer, user = rows[i]["completion"][0]["content"], rows[i]["prompt"][-1]["content"]
        assert trained.startswith(answer), trained
        assert trained.removeprefix(answer).strip() == "<|im_end|>", trained
        assert user in masked and "<|im_start|>assistant" in masked
        assert answer not in masked


def test_padding_free_batches_and_the_trainer_loss_equal_the_padded_batch_loss(tiny_model, tmp_path):
    """padding_free: rows of different lengths in one sequence, position ids restarting per row: the
    loss (and so the gradient) equals the padded batch's, and no padding token is computed."""
    base = resolve_base(str(tiny_model))
    tokenizer = load_tokenizer(base)
    rows, _ = training_split(DATA, 8)
    rows[1]["completion"][0]["content"] *= 3  # lengths that differ widely: padding would be most of the batch
    # Two loads of the same weights (a fresh LoRA's B is zero: the adapters add nothing yet).
    padded, free = (make_trainer(load_causal_lm(base), tokenizer, tiny_cfg(n_samples=8, padding_free=flag), "float32", rows, [], tmp_path / str(flag), [])
                    for flag in (False, True))
    feats = [padded.train_dataset[i] for i in range(6)]
    a, b = padded.data_collator(feats), free.data_collator(feats)
    assert a["input_ids"].shape[0] == 6 and b["input_ids"].shape[0] == 1
    assert b["input_ids"].shape[1] == int(a["attention_mask"].sum()) < a["input_ids"].numel()
    with torch.no_grad():
        loss_a, loss_b = padded.model(**a).loss.item(), free.model(**b).loss.item()
    assert abs(loss_a - loss_b) < 1e-4, (loss_a, loss_b)
    # The trainer's own loss (the output layer over the trained positions only) is transformers' loss.
    with torch.no_grad():
        assert abs(padded.compute_loss(padded.model, dict(a)).item() - loss_a) < 1e-5
        assert abs(free.compute_loss(free.model, dict(b)).item() - loss_a) < 1e-4
    # Without the restarting position ids the rows would attend to each other: a different loss.
    with torch.no_grad():
        joined = free.model(input_ids=b["input_ids"], labels=b["labels"]).loss.item()
    assert abs(joined - loss_a) > 1e-3


def test_bf16_where_the_cpu_has_it_and_float32_where_it_does_not(tiny_model, tmp_path):
    """Needs a CPU with AVX512-BF16 or AMX (or a bf16 GPU) for bf16; elsewhere it runs the fallback.
    With native bf16: dtype bfloat16 is autocast over float32 weights, the first step (same weights)
    within 1% of float32's loss, the next steps within 10% (the trajectories part as bf16 rounds the
    updates), and dtype auto picks bf16. Without it: dtype auto trains in float32 and an explicit
    bfloat16 is refused with exit 2, before any model loads."""
    base = resolve_base(str(tiny_model))
    auto = train(base, tiny_cfg(n_samples=16, max_steps=1, batch_size=4, dtype="auto"), tmp_path / "auto")
    if not bf16_supported():
        assert auto["dtype"] == "float32"
        proc = run_cli("train", "--base", str(tiny_model), "--data", str(DATA), "--n-samples", "16", "--max-steps", "1",
                       "--dtype", "bfloat16", "--out", str(tmp_path / "refused"))
        assert proc.returncode == 2 and "no native bf16" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not (tmp_path / "refused").exists()
        return
    assert auto["dtype"] == "bfloat16"
    curves = {}
    for dtype in ("float32", "bfloat16"):
        record = train(base, tiny_cfg(n_samples=16, max_steps=3, batch_size=4, dtype=dtype), tmp_path / dtype)
        curves[dtype] = [loss for _, loss in record["loss_curve"]]
    fp32, bf16 = curves["float32"], curves["bfloat16"]
    assert len(fp32) == len(bf16) == 3
    assert fp32 != bf16  # autocast really ran in bf16
    assert abs(bf16[0] - fp32[0]) / fp32[0] < 0.01, (bf16, fp32)
    assert all(abs(b - f) / f < 0.10 for b, f in zip(bf16, fp32, strict=True)), (bf16, fp32)


def test_nan_loss_is_reported_not_hidden(smollm2_dir, tmp_path):
    broken = build_tiny_llama(tmp_path / "broken", smollm2_dir)
    from safetensors.torch import load_file, save_file

    weights = load_file(broken / "model.safetensors")
    weights["model.norm.weight"][0] = float("nan")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "adapter"
    with pytest.raises(TrainingFailed, match="loss became nan"):
        train(resolve_base(str(broken)), tiny_cfg(max_steps=3), out)
    assert not out.exists()

    proc = run_cli("train", "--base", str(broken), "--data", str(DATA), "--n-samples", "16", "--max-steps", "2",
                   "--dtype", "float32", "--out", str(out))
    assert proc.returncode == 1 and "loss became nan" in proc.stderr
    failed = json.loads((tmp_path / "adapter.failed.json").read_text())
    assert failed["status"] == "failed" and "nan" in failed["failure"]
    assert not out.exists()


def test_interrupted_run_leaves_no_complete_looking_output(tiny_model, tmp_path):
    out = tmp_path / "runs" / "adapter"
    cmd = [sys.executable, "-m", "harness.cli", "train", "--base", str(tiny_model), "--data", str(DATA),
           "--n-samples", "512", "--batch-size", "2", "--dtype", "float32", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.parent.glob(".adapter.*.partial/trainer")):
        time.sleep(0.2)
    assert list(out.parent.glob(".adapter.*.partial")), "training never started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert not list(out.parent.rglob(TRAIN_RECORD)) and not list(out.parent.rglob("adapter_config.json"))


def test_a_sigterm_swallowed_before_training_stops_it_at_the_first_step(tiny_model, tmp_path):
    # A library's bare `except:` (datasets hashing a map's arguments while the trainer is built) can
    # swallow the KeyboardInterrupt SIGTERM raises; the trainer's callback raises it again.
    out = tmp_path / "adapter"
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from harness import cli
        from harness.runtime import processes

        processes.handle_termination()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except:  # noqa: E722 - what the library does
            pass
        sys.argv = ["harness", "train", "--base", {str(tiny_model)!r}, "--data", {str(DATA)!r}, "--n-samples", "64",
                    "--max-steps", "50", "--dtype", "float32", "--out", {str(out)!r}]
        cli.main()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 128 + signal.SIGTERM and "interrupted (SIGTERM)" in proc.stderr, proc.stderr[-2000:]
    assert "step 5/50" not in proc.stderr  # stopped at its first step, not after training
    assert not out.exists() and not list(tmp_path.rglob("adapter_config.json"))


def test_qlora_on_cpu_is_a_clear_error(tiny_model, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_cli("train", "--base", str(tiny_model), "--data", str(DATA), "--n-samples", "8", "--qlora", "--out", str(tmp_path / "q"))
    assert proc.returncode == 2 and "--qlora" in proc.stderr and "CUDA" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("args", "expect"), [(["--target-modules", "q_proj,nosuch_proj"], "--target-modules nosuch_proj: no such module"),
                                              (["--max-seq-len", "9"], "--max-seq-len 9: no row")])
def test_settings_the_base_or_data_cannot_meet_exit_2_before_training(args, expect, tiny_model, tmp_path):
    out = tmp_path / "a"
    proc = run_cli("train", "--base", str(tiny_model), "--data", str(DATA), "--n-samples", "8", *args, "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expect in errors[0], proc.stderr[-1000:]
    assert not out.exists() and not list(tmp_path.glob(".a.*"))


def test_harness_train_options_take_effect(tiny_model, tmp_path):
    """Every training option through the CLI, each checked where it shows: the adapter's config and
    weights, the step count, the record; a smaller learning rate moves the weights less, another seed
    starts elsewhere."""
    from safetensors.torch import load_file

    common = ["train", "--base", str(tiny_model), "--data", str(DATA), "--n-samples", "40", "--lora-r", "4", "--lora-alpha", "12",
              "--lora-dropout", "0.1", "--target-modules", "q_proj,v_proj", "--epochs", "2", "--max-seq-len", "160", "--batch-size", "4",
              "--grad-accum", "2", "--warmup-ratio", "0.5", "--dtype", "float32", "--padding-free"]
    runs = {"main": ["--learning-rate", "0.003", "--seed", "5"], "slow": ["--learning-rate", "0.0003", "--seed", "5"],
            "reseeded": ["--learning-rate", "0.003", "--seed", "6", "--use-dora"]}
    for name, extra in runs.items():
        proc = run_cli(*common, *extra, "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "main/adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 12 and config["lora_dropout"] == 0.1
    assert set(config["target_modules"]) == {"q_proj", "v_proj"}
    weights = {name: load_file(tmp_path / name / "adapter_model.safetensors") for name in runs}
    assert {k.split(".")[-3] for k in weights["main"]} == {"q_proj", "v_proj"}  # ...self_attn.q_proj.lora_A.weight
    record = json.loads((tmp_path / "main" / TRAIN_RECORD).read_text())
    rows = record["data"]["n_samples"]  # the training rows after the held-out split
    assert record["steps"] == 2 * -(-rows // 8)  # 2 epochs of ceil(rows / (batch 4 x grad-accum 2)) optimizer steps
    assert record["params"]["warmup_ratio"] == 0.5 and record["params"]["padding_free"] is True  # padding-free: tested above

    def moved(name):  # LoRA's B starts at zero: its size is how far training moved the adapter
        return sum(float(w.abs().sum()) for k, w in weights[name].items() if "lora_B" in k)

    assert moved("slow") < moved("main") / 3
    a_keys = [k for k in weights["main"] if "lora_A" in k]
    assert all(not torch.equal(weights["main"][k], weights["reseeded"][k]) for k in a_keys)
    # --use-dora: a DoRA adapter (a magnitude vector per adapted module), which vLLM cannot serve
    dora = json.loads((tmp_path / "reseeded/adapter_config.json").read_text())
    assert dora["use_dora"] is True and config["use_dora"] is False
    assert sum("lora_magnitude_vector" in k for k in weights["reseeded"]) == 2 * 2  # q_proj and v_proj of 2 layers
    assert not any("lora_magnitude_vector" in k for k in weights["main"])


def test_harness_train_preference_options_take_effect(tiny_model, tiny_adapters, tmp_path):
    """--method dpo --beta --preference-data --init-adapter through the CLI: DPO continues the given
    adapter against itself (its first loss is ln 2 whatever beta) and records what it was given: the
    pairs come from --preference-data, not from --data."""
    prefs = REPO / "suites/extraction/train_prefs.jsonl"
    proc = run_cli("train", "--base", str(tiny_model), "--method", "dpo", "--beta", "0.3", "--data", str(DATA), "--preference-data", str(prefs),
                   "--init-adapter", str(tiny_adapters["r4"]), "--n-samples", "8", "--learning-rate", "1e-9", "--max-steps", "1",
                   "--batch-size", "4", "--max-seq-len", "192", "--dtype", "float32", "--out", str(tmp_path / "dpo"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "dpo" / TRAIN_RECORD).read_text())
    assert record["method"] == "dpo" and record["beta"] == 0.3 and record["data"]["path"] == str(prefs)
    assert record["init_adapter"]["r"] == 4 and json.loads((tmp_path / "dpo/adapter_config.json").read_text())["r"] == 4
    assert abs(record["loss_curve"][0][1] - math.log(2)) < 1e-3
