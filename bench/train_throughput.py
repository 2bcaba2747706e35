"""Training tokens/s of `harness train` (TRL SFTTrainer + peft) against plain transformers Trainer +
peft on the same model, rows, LoRA settings, batch and steps, alternating, in one run: float32,
float32 with padding-free batches, and bf16 autocast where the CPU has it (AVX512-BF16/AMX), whose
loss curve is compared step by step with float32's (same seed, same batches).
Target (issue 22): harness train >= 1.0x the plain Trainer's tokens/s at the same dtype.
usage: python bench/train_throughput.py [--rows 64] [--steps 6] [--reps 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
REPO = HERE.parent


def plain_trainer(base, rows, steps: int, batch: int, max_len: int, bf16: bool) -> tuple[float, int]:
    """The hand-built peer: chat template, prompt masked with -100, Trainer + peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from harness.models import load_causal_lm, load_tokenizer

    tok = load_tokenizer(base)
    feats = []
    for row in rows:
        prompt = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = tok(full, add_special_tokens=False)["input_ids"][:max_len]
        feats.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(p_ids) + ids[len(p_ids):]})
    model = get_peft_model(load_causal_lm(base), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=5e-4,
                                 logging_steps=1, save_strategy="no", report_to=[], use_cpu=not torch.cuda.is_available(),
                                 include_num_input_tokens_seen="non_padding", disable_tqdm=True, bf16=bf16)
        trainer = Trainer(model=model, args=args, train_dataset=feats, data_collator=DataCollatorForSeq2Seq(tok, padding=True))
        t0 = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t0, int(trainer.state.num_input_tokens_seen)


def main(n_rows: int, steps: int, reps: int) -> None:
    from harness.runtime import environment

    environment.configure()
    from common import write_table

    from harness.config import TrainConfig
    from harness.models import resolve_base
    from harness.runtime.environment import bf16_supported
    from harness.train import train
    from harness.train.data import training_split

    base = resolve_base("default")
    data = REPO / "suites/extraction/train.jsonl"
    rows, _ = training_split(data, n_rows)
    dtypes = ["float32", "bfloat16"] if bf16_supported() else ["float32"]
    systems = [(f"transformers Trainer + peft, {d}", "plain", d, False) for d in dtypes]
    systems += [(f"harness train, {d}", "harness", d, False) for d in dtypes]
    systems.append(("harness train, float32, padding-free", "harness", "float32", True))
    speed = {name: [] for name, *_ in systems}
    curves = {}
    for _ in range(reps):
        for name, kind, dtype, free in systems:
            if kind == "plain":
                secs, tokens = plain_trainer(base, rows, steps, 8, 256, dtype == "bfloat16")
                speed[name].append(tokens / secs)
                continue
            with tempfile.TemporaryDirectory() as tmp:
                cfg = TrainConfig(data=data, n_samples=n_rows, lora_r=16, learning_rate=5e-4, max_steps=steps, batch_size=8,
                                  max_seq_len=256, dtype=dtype, padding_free=free)
                rec = train(base, cfg, Path(tmp) / "a")
            speed[name].append(rec["tokens_seen"] / rec["train_s"])
            curves[name] = [loss for _, loss in rec["loss_curve"]]
    table = []
    for name, kind, dtype, free in systems:
        peer = statistics.median(speed[f"transformers Trainer + peft, {dtype}"])
        value = statistics.median(speed[name])
        if kind == "plain":
            verdict = ""
        elif free:  # an option, not the default: it removes padding but attends across the whole flattened batch
            verdict = "option (pays when row lengths differ widely)"
        else:
            verdict = "met" if value / peer >= 1.0 else "MISSED (target 1.0x)"
        table.append([name, f"{value:.1f}", f"{value / peer:.2f}x", verdict])
    notes = [f"{n_rows} extraction rows, {steps} steps of batch 8, LoRA r=16 all-linear, max_seq_len 256, {reps} alternating reps",
             "tokens: non-padding input tokens seen (transformers' counter) over the train() wall time; ratio: against the "
             "plain Trainer at the same dtype (target >= 1.0x)"]
    reference = curves["harness train, float32"]
    for name in [n for n in curves if n != "harness train, float32"]:
        delta = max(abs(a - b) / abs(b) for a, b in zip(curves[name], reference, strict=True))
        first = abs(curves[name][0] - reference[0]) / abs(reference[0])  # same weights: numerics alone
        notes.append(f"loss curve of '{name}' vs float32, same seed and batches: step 1 (same weights) {first:.2%}, "
                     f"max relative difference {delta:.2%} over "
                     f"{len(reference)} steps ({', '.join(f'{a:.4f}' for a in curves[name])} vs {', '.join(f'{b:.4f}' for b in reference)})")
    write_table("train_throughput", "Training throughput: harness train vs plain Trainer + peft (SmolLM2-135M)",
                ["system", "train tokens/s (median)", "ratio to the plain Trainer", "verdict"], table, notes)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--reps", type=int, default=2)
    a = p.parse_args()
    main(a.rows, a.steps, a.reps)
