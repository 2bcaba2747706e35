"""The vLLM backend against a running OpenAI-compatible vLLM server (`harness serve`, or any
`vllm serve` with --enable-lora and runtime LoRA updating): scoring can run on a GPU box while the
sweep runs elsewhere. Adapters the server does not list are loaded at run time by path, so the
server must see the same filesystem path. Token ids go over the wire, as with the in-process engine.
"""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from harness.errors import UserError
from harness.models import BaseModel, load_tokenizer
from harness.score.backends.base import (
    Backend,
    Candidate,
    GenerateRequest,
    LoglikelihoodRequest,
)
from harness.score.backends.tokens import encode, encode_pair

BATCH = 32  # prompts per HTTP request; several requests in flight let the server mix candidates


class VLLMServerBackend(Backend):
    name = "vllm"

    def __init__(self, base: BaseModel, candidates: list[Candidate], dtype: str = "float32", server: str = "", timeout: float = 600):
        self.base, self.candidates, self.dtype = base, candidates, dtype
        self.url, self.timeout = server.rstrip("/"), timeout
        self._tokenizer = None
        self._model_ids: dict[str, str] = {}

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            text = resp.read().decode()
        return json.loads(text) if text.strip().startswith("{") else {}

    def _ensure_ready(self):
        if self._tokenizer is not None:
            return
        try:
            with urllib.request.urlopen(self.url + "/v1/models", timeout=30) as resp:
                models = json.loads(resp.read())["data"]
        except OSError as err:
            raise UserError(f"--server {self.url}: not reachable ({err})") from None
        base_id = next((m["id"] for m in models if not m.get("parent")), None)
        by_root = {m.get("root"): m["id"] for m in models if m.get("parent")}
        for cand in self.candidates:
            if cand.is_base:
                self._model_ids[cand.hash] = base_id
            elif str(cand.adapter) in by_root:
                self._model_ids[cand.hash] = by_root[str(cand.adapter)]
            else:
                self._post("/v1/load_lora_adapter", {"lora_name": cand.hash, "lora_path": str(cand.adapter)})
                self._model_ids[cand.hash] = cand.hash
        self._tokenizer = load_tokenizer(self.base)

    def _complete_all(self, jobs: list[tuple[Candidate, list[list[int]], dict]]) -> list[list[dict]]:
        def run(job):
            cand, prompts, params = job
            return self._post("/v1/completions", {"model": self._model_ids[cand.hash], "prompt": prompts, **params})["choices"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(run, jobs))

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool, int]]:
        if not requests:
            return []
        self._ensure_ready()
        pairs = [encode_pair(self._tokenizer, r.context, r.continuation) for r in requests]
        params = {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 1}
        order = sorted(range(len(requests)), key=lambda i: requests[i].candidate.hash)
        chunks = _split_by(order, requests)
        jobs = [(requests[c[0]].candidate, [pairs[i][0] + pairs[i][1] for i in c], params) for c in chunks]
        results: list = [None] * len(requests)
        for chunk, choices in zip(chunks, self._complete_all(jobs), strict=True):
            for i, choice in zip(chunk, sorted(choices, key=lambda c: c["index"]), strict=True):
                ids = pairs[i][0] + pairs[i][1]
                total, greedy = 0.0, True
                for pos in range(len(pairs[i][0]), len(ids)):
                    entry = choice["prompt_logprobs"][pos][str(ids[pos])]
                    total += entry["logprob"]
                    greedy &= entry["rank"] == 1
                results[i] = (total, greedy, len(ids))
        return results

    def generate(self, requests: list[GenerateRequest]) -> list[tuple[str, int]]:
        if not requests:
            return []
        self._ensure_ready()
        jobs, encoded = [], [encode(self._tokenizer, r.context) for r in requests]
        for r, ids in zip(requests, encoded, strict=True):
            params = {"max_tokens": r.max_tokens, "temperature": r.temperature, "stop": list(r.until) or None,
                      "skip_special_tokens": True, **({"seed": r.seed} if r.temperature > 0 else {})}
            jobs.append((r.candidate, [ids], params))
        out = []
        for ids, choices in zip(encoded, self._complete_all(jobs), strict=True):
            text = choices[0]["text"]
            out.append((text, len(ids) + len(self._tokenizer(text, add_special_tokens=False)["input_ids"])))
        return out


def _split_by(order: list[int], requests) -> list[list[int]]:
    """Consecutive chunks of at most BATCH indices that share one candidate (one model per HTTP request)."""
    chunks: list[list[int]] = []
    for i in order:
        if chunks and len(chunks[-1]) < BATCH and requests[chunks[-1][0]].candidate == requests[i].candidate:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks
