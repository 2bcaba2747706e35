"""Backend parity: the same candidates, the same prompts, float32, hf versus vllm.

`harness doctor --parity` and the sweep's start-up check use this. Without adapters of the user's,
two LoRA adapters with random (non-zero) weights are made for the base on the fly, so a mixed
batch really exercises the per-candidate LoRA path.
"""

from __future__ import annotations

from pathlib import Path

from harness.models import BaseModel, load_causal_lm
from harness.score.backends import (
    GenerateRequest,
    LoglikelihoodRequest,
    create,
    make_candidate,
)
from harness.store.paths import parity_adapters_dir

PROMPTS = [
    ("Invoice INV-20417 from Acme Corp, dated March 5, 2024. Amount due: $1,234.50.", ' {"type": "invoice", "number": "INV-20417"}'),
    ("Question: What is the capital of France?\nAnswer:", " Paris"),
    ("The following are questions (with answers) about biology.\n\nQuestion: What do plants use to make glucose?\nAnswer:", " photosynthesis"),
    ("def add(a, b):\n", "    return a + b\n"),
]
TOLERANCE = 1e-3


def random_adapters(base: BaseModel, out_dir: Path, ranks=(8, 16)) -> list[Path]:
    from peft import LoraConfig, get_peft_model

    paths = []
    for i, rank in enumerate(ranks):
        path = out_dir / f"random-{i}-r{rank}"
        if not (path / "adapter_config.json").exists():
            import torch

            torch.manual_seed(100 + i)
            model = get_peft_model(load_causal_lm(base), LoraConfig(r=rank, lora_alpha=rank, target_modules="all-linear",
                                                                      init_lora_weights=False, task_type="CAUSAL_LM"))
            with torch.no_grad():  # small random B: a visible but sane change to the base model
                for name, p in model.named_parameters():
                    if "lora_B" in name:
                        p.mul_(0.05)
            model.save_pretrained(path)
        paths.append(path)
    return paths


def check(base: BaseModel, adapters: list[Path] | None = None, server: str | None = None) -> list[dict]:
    """One row per (candidate, prompt, check) comparing the two backends; `ok` says if it is within tolerance.

    `adapters`: the user's; none given, two random LoRAs made once per base in the harness cache."""
    adapters = adapters or random_adapters(base, parity_adapters_dir(base.identity))
    cands = [make_candidate("base", base)] + [make_candidate(p.name, base, p) for p in adapters]
    ll = [LoglikelihoodRequest(c, ctx, cont) for ctx, cont in PROMPTS for c in cands]
    gen = [GenerateRequest(c, ctx, (), 16) for ctx, _ in PROMPTS for c in cands]
    hf = create("hf", base, cands)
    vllm = create("vllm", base, cands, server=server) if server else create("vllm", base, cands)
    try:
        rows = []
        for req, (a, ga, _), (b, gb, _) in zip(ll, hf.loglikelihood(ll), vllm.loglikelihood(ll), strict=True):
            rows.append({"candidate": req.candidate.name, "prompt": req.context[:40], "check": "prompt logprob",
                         "hf": a, "vllm": b, "ok": abs(a - b) < TOLERANCE and ga == gb})
        for req, (a, _), (b, _) in zip(gen, hf.generate(gen), vllm.generate(gen), strict=True):
            rows.append({"candidate": req.candidate.name, "prompt": req.context[:40], "check": "greedy text",
                         "hf": a, "vllm": b, "ok": a == b})
        return rows
    finally:
        vllm.close()
        hf.close()
