"""`--backend auto`: the candidates the vllm engine can score go to one engine, the rest to
transformers+peft, on the same requests in one run; each candidate's item rows name the backend that
scored it.

vllm_support decides before any engine loads (adapters made by other tools: DoRA, modules_to_save,
LoRA on lm_head, ...). A candidate the engine fails on all the same (what no static check sees) is
moved to hf for good by `reroute`, which evaluate() calls when it retries a failed suite candidate by
candidate. Each engine starts on the first candidate routed to it: a run vLLM can take whole loads
no transformers model, and the other way round.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from harness.models import BaseModel
from harness.score.backends import vllm_support
from harness.score.backends.base import Backend, Candidate

log = logging.getLogger(__name__)


class RoutedBackend(Backend):
    name = "auto"

    def __init__(self, base: BaseModel, candidates: list[Candidate], dtype: str = "float32", **vllm_options):
        self.base, self.dtype, self.candidates = base, dtype, []
        self._vllm_options = vllm_options
        self._engines: dict[str, Backend] = {}  # "vllm" | "hf" -> the engine, made on first use
        self._route: dict[str, str] = {}  # candidate hash -> "vllm" | "hf"
        self.reasons: dict[str, list[str]] = {}  # candidate name -> why the vllm engine cannot score it
        self.add_candidates(candidates)

    def add_candidates(self, candidates: list[Candidate]) -> None:
        new = [c for c in candidates if c not in self.candidates]
        super().add_candidates(new)
        whole = vllm_support.base_unsupported(self.base)
        for cand in new:
            why = [whole] if whole else [] if cand.is_base else vllm_support.adapter_unsupported(cand.adapter)
            self._assign(cand, "hf" if why else "vllm", why)

    def _assign(self, cand: Candidate, kind: str, why: list[str]) -> None:
        from harness.score.backends import create

        if why:
            self.reasons[cand.name] = why
            log.info("%s is scored on hf: %s", cand.name, "; ".join(why))
        engine = self._engines.get(kind)
        try:
            if engine is None:
                self._engines[kind] = create(kind, self.base, [cand], dtype=self.dtype, **(self._vllm_options if kind == "vllm" else {}))
            else:
                engine.add_candidates([cand])
        except ValueError as err:  # a rank above the running engine's max_lora_rank
            if kind == "hf":
                raise
            self._assign(cand, "hf", [str(err)])
            return
        self._route[cand.hash] = kind

    def name_for(self, candidate: Candidate) -> str:
        return self._route[candidate.hash]

    def reroute(self, candidate: Candidate, reason: str) -> bool:
        """Move a candidate the vllm engine failed on to hf; False when it is on hf already."""
        if self._route.get(candidate.hash) != "vllm":
            return False
        self._assign(candidate, "hf", [f"the vllm engine failed on it: {reason}"])
        return True

    def _split(self, requests: list, method: str) -> list:
        """Each engine answers its candidates' requests; answers come back in request order."""
        answers: list = [None] * len(requests)
        by_engine: dict[str, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            by_engine[self._route[request.candidate.hash]].append(i)
        for kind, indices in by_engine.items():
            got = getattr(self._engines[kind], method)([requests[i] for i in indices])
            for i, value in zip(indices, got, strict=True):
                answers[i] = value
        return answers

    def loglikelihood(self, requests):
        return self._split(requests, "loglikelihood")

    def generate(self, requests):
        return self._split(requests, "generate")

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
