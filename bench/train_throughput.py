"""Issue 3: training tokens/s of `harness train` (TRL SFTTrainer + peft) against plain transformers
Trainer + peft on the same model, rows, LoRA settings, batch and steps, alternating, in one run.
usage: python bench/train_throughput.py [--rows 32] [--steps 4] [--reps 3]
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


def plain_trainer(base, rows, steps: int, batch: int, max_len: int) -> tuple[float, int]:
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
                                 include_num_input_tokens_seen="non_padding", disable_tqdm=True)
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
    from harness.train import train
    from harness.train.data import training_split

    base = resolve_base("default")
    data = REPO / "suites/extraction/train.jsonl"
    rows, _ = training_split(data, n_rows)
    results = {"harness train (TRL SFTTrainer)": [], "transformers Trainer + peft": []}
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(data=data, n_samples=n_rows, lora_r=16, learning_rate=5e-4, max_steps=steps, batch_size=8,
                              max_seq_len=256, dtype="float32")
            rec = train(base, cfg, Path(tmp) / "a")
            results["harness train (TRL SFTTrainer)"].append(rec["tokens_seen"] / rec["train_s"])
        secs, tokens = plain_trainer(base, rows, steps, 8, 256)
        results["transformers Trainer + peft"].append(tokens / secs)
    ref = statistics.median(results["transformers Trainer + peft"])
    table = [[name, f"{statistics.median(v):.1f}", f"{statistics.median(v) / ref:.2f}"] for name, v in results.items()]
    write_table("train_throughput", "Training throughput: harness train vs plain Trainer + peft (SmolLM2-135M, fp32)",
                ["system", "train tokens/s (median)", "ratio"], table,
                [f"{n_rows} extraction rows, {steps} steps of batch 8, LoRA r=16 all-linear, max_seq_len 256, {reps} alternating reps",
                 "tokens: non-padding input tokens seen (transformers' counter) over the train() wall time"])


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    main(a.rows, a.steps, a.reps)
