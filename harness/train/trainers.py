"""TRL trainers for each training method, configured for CPU-class machines.

sft: `SFTTrainer` on conversational prompt/completion rows, loss on the answer only (through the
     output layer at the answer's tokens alone: `answer_only_sft_trainer`).
dpo: `DPOTrainer` on preference pairs. The reference is the model with its trainable adapter set
     aside: the base model for a fresh adapter, or a frozen copy of `--init-adapter` when continuing
     one (TRL copies it as adapter "ref"), so SFT-then-DPO is anchored to the SFT model.
orpo: `ORPOTrainer` (TRL's experimental package): SFT and preference in one stage, no reference.

TRL's preference defaults assume a GPU (bf16, gradient checkpointing, learning rate 1e-6); here the
dtype, the learning rate and the rest come from the `TrainConfig`, and checkpointing stays off (it
trades compute for memory, the wrong trade for a 135M model on a CPU).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from harness.config import TrainConfig
from harness.errors import UserError
from harness.runtime.environment import device


def _common_args(cfg: TrainConfig, dtype: str, workdir: Path) -> dict:
    return dict(
        output_dir=str(workdir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        max_length=cfg.max_seq_len,
        bf16=dtype == "bfloat16",
        gradient_checkpointing=False,
        use_cpu=device() == "cpu",
        seed=cfg.seed,
        logging_steps=1,
        logging_nan_inf_filter=False,  # the default would hide a NaN loss behind an average
        include_num_input_tokens_seen="non_padding",
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )


def _orpo():
    try:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    except ImportError:
        raise UserError(f"--method orpo: TRL {metadata.version('trl')} has no trl.experimental.orpo (experimental code "
                        "moves between releases); install the TRL version pyproject.toml pins") from None
    return ORPOConfig, ORPOTrainer


# Config fields of models whose logits are scaled or soft-capped after the output layer (Gemma-2,
# Granite, Cohere, ...): their loss takes TRL's own path, which applies each.
SCALED_LOGITS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def answer_only_sft_trainer():
    """TRL's SFTTrainer with a loss that runs the output layer only where a label is trained.

    TRL's fused LM head scores only those positions on Triton devices; elsewhere (CPU) it scores
    every position, in chunks, with entropy and top-1 for its metrics: harness train ran at 0.77x a
    plain transformers Trainer (bench/train_throughput.py). The loss is the same: the sum of the
    answer tokens' negative log-likelihoods over the trained tokens of the batch."""
    import torch
    from trl import SFTTrainer

    class AnswerOnlySFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            causal = model.get_base_model() if hasattr(model, "get_base_model") else model
            config = causal.config.get_text_config()
            if any(getattr(config, name, None) is not None for name in SCALED_LOGITS):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # TRL knows each rule
            body = getattr(causal, causal.base_model_prefix)
            fed = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
            target = inputs["labels"][:, 1:]
            trained = target != -100
            # Accelerate applies bf16 autocast around model.forward, which this bypasses: its context here.
            with self.accelerator.autocast():
                hidden = body(**fed, use_cache=False).last_hidden_state[:, :-1]
                logits = causal.get_output_embeddings()(hidden[trained]).float()
            total = torch.nn.functional.cross_entropy(logits, target[trained], reduction="sum")
            count = num_items_in_batch if num_items_in_batch is not None else trained.sum().clamp(min=1)
            loss = total / count
            return (loss, {"loss": loss}) if return_outputs else loss

    return AnswerOnlySFTTrainer


def check_method_available(method: str) -> None:
    """Before any model loads: the trainer of `method` exists in the installed TRL."""
    if method == "orpo":
        _orpo()


def make_trainer(model, tokenizer, cfg: TrainConfig, dtype: str, train_rows, heldout_rows, workdir: Path, callbacks: list):
    """The TRL trainer of cfg.method over `model` (a plain model: a fresh LoRA adapter is added; a
    PeftModel: its adapter is trained further)."""
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers.trainer_callback import PrinterCallback

    common = _common_args(cfg, dtype, workdir)
    extra = {}
    lora = None if isinstance(model, PeftModel) else LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.alpha, lora_dropout=cfg.lora_dropout, target_modules=cfg.target_modules, use_dora=cfg.use_dora,
        task_type="CAUSAL_LM")
    if cfg.method == "sft":
        from trl import SFTConfig

        trainer_cls = answer_only_sft_trainer()
        # Labels -100 on the prompt: only the answer is learned. The held-out evaluation needs the loss alone.
        args = SFTConfig(**common, completion_only_loss=True, packing=False, prediction_loss_only=True)
        if cfg.padding_free:
            # TRL's own padding-free collator, passed in because SFTConfig(padding_free=True) refuses max_length
            # without packing (rows are still truncated to it when tokenized). transformers reads the restarting
            # position ids as separate sequences and masks attention between them: the loss equals the padded batch's.
            from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

            extra["data_collator"] = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)
    elif cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer_cls = DPOTrainer
        args = DPOConfig(**common, beta=cfg.beta, precompute_ref_log_probs=False)
    else:
        config_cls, trainer_cls = _orpo()
        args = config_cls(**common, beta=cfg.beta)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(heldout_rows) if heldout_rows else None,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=callbacks,
        **extra,
    )
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts to stdout; we keep the curve instead
    return trainer
