"""Bases other than Llama: tiny random Qwen2, Gemma2 (soft-capped attention and output logits) and
Phi3 (fused qkv_proj and gate_up_proj), head size 64, with SmolLM2's tokenizer. Each gets an adapter
trained by the harness, then both backends score the base and the adapter with parity."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.needs("vllm")

ARCHITECTURES = {
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {"tie_word_embeddings": True}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {"head_dim": 64, "query_pre_attn_scalar": 64, "attn_logit_softcapping": 50.0,
                                                     "final_logit_softcapping": 30.0, "sliding_window": 4096}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {"tie_word_embeddings": False}),
}


def build_tiny(kind: str, out: Path, tokenizer_dir: Path) -> Path:
    import torch
    import transformers
    from transformers import AutoTokenizer

    config_name, model_name, extra = ARCHITECTURES[kind]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = getattr(transformers, config_name)(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("kind", list(ARCHITECTURES))
def test_a_trained_adapter_scores_alike_on_both_backends(kind, smollm2_dir, tmp_path, harness_home):
    from harness.config import TrainConfig
    from harness.models import resolve_base
    from harness.score.backends import parity, vllm_support
    from harness.train import train

    base = resolve_base(str(build_tiny(kind, tmp_path / kind, smollm2_dir)))
    assert vllm_support.base_unsupported(base) is None
    adapter = tmp_path / "adapter"
    record = train(base, TrainConfig(data=REPO / "suites/extraction/train.jsonl", n_samples=16, lora_r=8, learning_rate=2e-2, max_steps=2,
                                     batch_size=8, max_seq_len=160, dtype="float32"), adapter)
    assert record["steps"] == 2 and vllm_support.adapter_unsupported(adapter) == []
    rows = parity.check(base, [adapter])
    bad = [r for r in rows if not r["ok"]]
    assert not bad and len(rows) == 2 * 2 * len(parity.PROMPTS), bad
    logprobs = {(r["candidate"], r["prompt"]): r["hf"] for r in rows if r["check"] == "prompt logprob"}
    moved = [abs(logprobs[("adapter", p)] - logprobs[("base", p)]) for c, p in logprobs if c == "base"]
    assert max(moved) > 1e-3, "the trained adapter changes what the model says"
