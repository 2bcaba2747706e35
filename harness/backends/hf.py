"""transformers + peft: one base model, every candidate's adapter loaded into one PeftModel.

Requests are grouped by candidate (the adapter is switched, never the base reloaded), sorted by
length and batched with left padding; explicit position ids keep padded rows exactly equal to
unpadded ones, and only the continuation's logits are computed (`logits_to_keep`), which matters
with a 49k vocabulary. Log-likelihoods follow lm-eval's HFLM token for token (tokens.encode_pair).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from contextlib import contextmanager

from harness.backends.base import Backend, Candidate, GenerateRequest, LoglikelihoodRequest
from harness.backends.tokens import encode, encode_pair
from harness.errors import UserError
from harness.models import BaseModel, load_causal_lm, load_tokenizer

log = logging.getLogger(__name__)


class HFBackend(Backend):
    name = "hf"
    base_loads = 0  # process-wide count of base-model loads (tests assert one per evaluation)

    def __init__(self, base: BaseModel, candidates: list[Candidate], dtype: str = "float32",
                 batch_tokens: int = 8192, gen_batch_size: int = 16):
        self.base, self.candidates, self.dtype = base, candidates, dtype
        self.batch_tokens, self.gen_batch_size = batch_tokens, gen_batch_size
        self._model = self._tokenizer = None  # loaded on the first cache miss

    # ------------------------------------------------------------ loading
    def _ensure_loaded(self):
        if self._model is not None:
            return
        HFBackend.base_loads += 1
        self._tokenizer = load_tokenizer(self.base)
        model = load_causal_lm(self.base, self.dtype)
        model.eval()
        self._model = model
        self._load_adapters([c for c in self.candidates if not c.is_base])

    def _load_adapters(self, adapters: list[Candidate]) -> None:
        from peft import PeftModel

        for cand in adapters:
            try:
                if isinstance(self._model, PeftModel):
                    self._model.load_adapter(cand.adapter, adapter_name=cand.hash)
                else:
                    self._model = PeftModel.from_pretrained(self._model, cand.adapter, adapter_name=cand.hash)
            except (RuntimeError, ValueError, KeyError) as err:
                first = str(err).strip().splitlines()[0][:200]
                raise UserError(f"--adapter {cand.name}={cand.adapter}: does not fit base {self.base.spec}: {first}") from None
        self._model.eval()

    def add_candidates(self, candidates: list[Candidate]) -> None:
        new = [c for c in candidates if c not in self.candidates]
        super().add_candidates(new)
        if self._model is not None:
            self._load_adapters([c for c in new if not c.is_base])

    @contextmanager
    def _active(self, candidate: Candidate):
        if not hasattr(self._model, "disable_adapter"):
            yield
        elif candidate.is_base:
            with self._model.disable_adapter():
                yield
        else:
            self._model.set_adapter(candidate.hash)
            yield

    # ------------------------------------------------------------ loglikelihood
    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool, int]]:
        import torch

        if not requests:
            return []
        self._ensure_loaded()
        results: list = [None] * len(requests)
        for cand, idxs in _group(requests, lambda r: r.candidate).items():
            pairs = {i: encode_pair(self._tokenizer, requests[i].context, requests[i].continuation) for i in idxs}
            order = sorted(idxs, key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
            with self._active(cand), torch.inference_mode():
                for batch in _token_batches(order, lambda i: len(pairs[i][0]) + len(pairs[i][1]), self.batch_tokens):
                    for i, value in zip(batch, self._score_batch([pairs[i] for i in batch]), strict=True):
                        results[i] = value
        return results

    def _score_batch(self, pairs):
        import torch

        seqs = [(ctx + cont)[:-1] for ctx, cont in pairs]
        width = max(map(len, seqs))
        keep = max(len(cont) for _, cont in pairs)
        pad = self._tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        device = self._model.device
        logits = self._model(
            input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device), logits_to_keep=keep
        ).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        out = []
        for row, (ctx, cont) in enumerate(pairs):
            lp = logprobs[row, keep - len(cont):]
            target = torch.tensor(cont, device=lp.device)
            total = lp.gather(-1, target[:, None]).sum().item()
            greedy = bool((lp.argmax(-1) == target).all())
            out.append((total, greedy, len(ctx) + len(cont)))
        return out

    # ------------------------------------------------------------ generation
    def generate(self, requests: list[GenerateRequest]) -> list[tuple[str, int]]:
        import torch

        if not requests:
            return []
        self._ensure_loaded()
        results: list = [None] * len(requests)
        groups = _group(requests, lambda r: (r.candidate, r.until, r.max_tokens, r.temperature))
        for (cand, until, max_tokens, temperature), idxs in groups.items():
            encoded = {i: encode(self._tokenizer, requests[i].context) for i in idxs}
            order = sorted(idxs, key=lambda i: -len(encoded[i]))
            with self._active(cand), torch.inference_mode():
                for start in range(0, len(order), self.gen_batch_size):
                    batch = order[start:start + self.gen_batch_size]
                    if temperature > 0:
                        torch.manual_seed(requests[batch[0]].seed)
                    texts = self._generate_batch([encoded[i] for i in batch], until, max_tokens, temperature)
                    for i, value in zip(batch, texts, strict=True):
                        results[i] = value
        return results

    def _generate_batch(self, prompts, until, max_tokens, temperature):
        import torch

        width = max(map(len, prompts))
        pad = self._tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts]).to(self._model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts]).to(self._model.device)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        out = self._model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_tokens, pad_token_id=pad,
            stop_strings=list(until) or None, tokenizer=self._tokenizer, top_p=None, top_k=None, **sampling,
        )
        texts = []
        for row, prompt in zip(out, prompts, strict=True):
            new = row[width:]
            text = cut_at_stop(self._tokenizer.decode(new, skip_special_tokens=True), until)
            texts.append((text, len(prompt) + int((new != pad).sum())))
        return texts

    def close(self) -> None:
        self._model = self._tokenizer = None


def cut_at_stop(text: str, until) -> str:
    cut = min((pos for s in until if s and (pos := text.find(s)) != -1), default=len(text))
    return text[:cut]


def _group(items, key) -> dict:
    groups = defaultdict(list)
    for i, item in enumerate(items):
        groups[key(item)].append(i)
    return groups


def _token_batches(order, length, budget):
    """Consecutive batches whose padded size (rows x longest) stays within the token budget."""
    batch, longest = [], 0
    for i in order:
        longest_if = max(longest, length(i))
        if batch and longest_if * (len(batch) + 1) > budget:
            yield batch
            batch, longest_if = [], length(i)
        batch.append(i)
        longest = longest_if
    if batch:
        yield batch
