"""transformers + peft: one base model, every candidate's adapter loaded into one PeftModel.

Requests are grouped by candidate (the adapter is switched, never the base reloaded). Log-likelihood
requests that share a context (the choices of a multiple-choice item) are packed into ONE row: the
context once, then each continuation, with a 4D attention mask (each continuation sees the context
and itself, never the other continuations) and position ids restarting after the context. So an
MMLU item costs one context forward instead of four; the values are those of separate forwards (up
to float summation order). Only the positions that predict continuation tokens go through the
output layer, which matters with a 49k vocabulary. Tokens follow lm-eval's HFLM exactly
(tokens.encode_pair). Generation batches are left-padded with explicit position ids.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from contextlib import contextmanager

from harness.errors import UserError
from harness.models import BaseModel, load_causal_lm, load_tokenizer
from harness.runtime.files import read_json
from harness.score.backends.base import (
    Backend,
    Candidate,
    GenerateRequest,
    LoglikelihoodRequest,
)
from harness.score.backends.tokens import encode, encode_pair

log = logging.getLogger(__name__)


class HFBackend(Backend):
    name = "hf"
    base_loads = 0  # process-wide count of base-model loads (tests assert one per evaluation)

    def __init__(self, base: BaseModel, candidates: list[Candidate], dtype: str = "float32",
                 batch_tokens: int = 8192, gen_batch_size: int = 48):
        self.base, self.candidates, self.dtype = base, candidates, dtype
        # Decoding on a CPU reads every weight once per step whatever the batch: 48 rows decoded 50
        # extraction answers 1.3x faster than 16 (measured for the W1 bench).
        self.batch_tokens, self.gen_batch_size = batch_tokens, gen_batch_size
        self._model = self._tokenizer = None  # loaded on the first cache miss; _model: the one in use
        self._models: list = []  # the shared model (index 0), then one per adapter that cannot share it
        self._home: dict[str, int] = {}  # candidate hash -> index in _models (the base: 0)

    # ------------------------------------------------------------ loading
    def _ensure_loaded(self):
        if self._models:
            return
        self._tokenizer = load_tokenizer(self.base)
        self._model = self._new_model()
        self._models = [self._model]
        self._load_adapters([c for c in self.candidates if not c.is_base])

    def _new_model(self):
        HFBackend.base_loads += 1
        model = load_causal_lm(self.base, self.dtype)
        model.eval()
        return model

    def _load_adapters(self, adapters: list[Candidate]) -> None:
        """Every adapter joins the one shared model, but one with `modules_to_save` (whole copies of
        modules, e.g. Unsloth's embed_tokens + lm_head): peft cannot stack another adapter's LoRA on a
        module such a copy replaced, so it gets a model of its own (one more base in memory)."""
        for cand in adapters:
            own = bool(read_json(cand.adapter / "adapter_config.json", "peft adapter config").get("modules_to_save"))
            index = len(self._models) if own else 0
            if own:
                log.info("%s saves whole modules (modules_to_save): scored on a base model of its own", cand.name)
                self._models.append(self._new_model())
            self._models[index] = self._with_adapter(self._models[index], cand)
            self._home[cand.hash] = index

    def _with_adapter(self, model, cand: Candidate):
        from peft import PeftModel

        try:
            if isinstance(model, PeftModel):
                model.load_adapter(cand.adapter, adapter_name=cand.hash)
            else:
                model = PeftModel.from_pretrained(model, cand.adapter, adapter_name=cand.hash)
        except (RuntimeError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0][:200]
            raise UserError(f"--adapter {cand.name}={cand.adapter}: does not fit base {self.base.spec}: {first}") from None
        return model.eval()

    def add_candidates(self, candidates: list[Candidate]) -> None:
        new = [c for c in candidates if c not in self.candidates]
        super().add_candidates(new)
        if self._models:
            self._load_adapters([c for c in new if not c.is_base])

    @contextmanager
    def _active(self, candidate: Candidate):
        self._model = self._models[self._home.get(candidate.hash, 0)]
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
            by_context = _group([pairs[i][0] for i in idxs], tuple)  # context tokens -> positions in idxs
            packs = [(list(ctx), [(idxs[m], pairs[idxs[m]][1]) for m in members]) for ctx, members in by_context.items()]
            order = sorted(range(len(packs)), key=lambda p: -_packed_len(packs[p]))
            with self._active(cand), torch.inference_mode():
                for batch in _token_batches(order, lambda p: _packed_len(packs[p]), self.batch_tokens):
                    for i, value in self._score_packed([packs[p] for p in batch]):
                        results[i] = value
        return results

    def _score_packed(self, packs):
        """Rows of (context, [(request index, continuation)]) -> (request index, (logprob, greedy, tokens))."""
        import torch

        width = max(map(_packed_len, packs))
        dtype = next(self._model.parameters()).dtype
        ids = torch.full((len(packs), width), self._tokenizer.pad_token_id)
        positions = torch.zeros((len(packs), width), dtype=torch.long)
        # Additive mask: 0 where a query may attend, the dtype's minimum elsewhere; padding sees itself.
        mask = torch.full((len(packs), 1, width, width), torch.finfo(dtype).min, dtype=dtype)
        mask[:, 0].diagonal(dim1=-2, dim2=-1).fill_(0)
        causal = lambda n: torch.triu(torch.full((n, n), torch.finfo(dtype).min, dtype=dtype), diagonal=1)  # noqa: E731
        wanted = []  # (row, positions whose logits predict the continuation, continuation, request index, tokens)
        for row, (ctx, conts) in enumerate(packs):
            n_ctx = len(ctx)
            ids[row, :n_ctx] = torch.tensor(ctx)
            positions[row, :n_ctx] = torch.arange(n_ctx)
            mask[row, 0, :n_ctx, :n_ctx] = causal(n_ctx)
            start = n_ctx
            for i, cont in conts:
                body = cont[:-1]  # the last continuation token is predicted, never fed
                end = start + len(body)
                ids[row, start:end] = torch.tensor(body, dtype=torch.long)
                positions[row, start:end] = torch.arange(n_ctx, n_ctx + len(body))
                mask[row, 0, start:end, :n_ctx] = 0
                mask[row, 0, start:end, start:end] = causal(len(body))
                wanted.append((row, [n_ctx - 1, *range(start, end)][:len(cont)], cont, i, n_ctx + len(cont)))
                start = end
        hidden = self._body()(input_ids=ids.to(self._model.device), attention_mask=mask.to(self._model.device),
                              position_ids=positions.to(self._model.device)).last_hidden_state
        rows = torch.tensor([row for row, at, *_ in wanted for _ in at])
        cols = torch.tensor([p for _, at, *_ in wanted for p in at])
        logprobs = torch.log_softmax(self._logits(hidden[rows.to(hidden.device), cols.to(hidden.device)]).float(), dim=-1)
        out, offset = [], 0
        for _, at, cont, i, tokens in wanted:
            lp = logprobs[offset:offset + len(at)]
            offset += len(at)
            target = torch.tensor(cont, device=lp.device)
            out.append((i, (lp.gather(-1, target[:, None]).sum().item(), bool((lp.argmax(-1) == target).all()), tokens)))
        return out

    def _body(self):
        """The decoder stack (LoRA layers live inside it, so the active adapter applies)."""
        causal = self._model.get_base_model() if hasattr(self._model, "get_base_model") else self._model
        return getattr(causal, causal.base_model_prefix)

    def _logits(self, hidden):
        causal = self._model.get_base_model() if hasattr(self._model, "get_base_model") else self._model
        logits = causal.get_output_embeddings()(hidden)
        cap = getattr(causal.config, "final_logit_softcapping", None)  # Gemma-2 style models
        return _softcap(logits, cap) if cap else logits

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
        stops = [stop_in_generated(until, width, self._tokenizer)] if any(until) else []
        out = self._model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_tokens, pad_token_id=pad,
            stopping_criteria=stops, top_p=None, top_k=None, **sampling,
        )
        texts = []
        for row, prompt in zip(out, prompts, strict=True):
            new = row[width:]
            text = cut_at_stop(self._tokenizer.decode(new, skip_special_tokens=True), until)
            texts.append((text, len(prompt) + int((new != pad).sum())))
        return texts

    def close(self) -> None:
        self._model = self._tokenizer = None
        self._models, self._home = [], {}


def _packed_len(pack) -> int:
    ctx, conts = pack
    return len(ctx) + sum(len(cont) - 1 for _, cont in conts)


def _softcap(logits, cap: float):
    import torch

    return torch.tanh(logits / cap) * cap


def stop_in_generated(until, prompt_width: int, tokenizer):
    """Each row is done once a stop string appears in the text it generated. transformers' own
    `stop_strings` also matches one spanning the prompt's end (a chat prompt ending in "\n" and a
    generated "\n" stopped at "\n\n" after one token); lm-eval and vLLM look at the generated text
    only. Only the last few tokens are decoded per step: a stop string's tokens and two more."""
    import torch
    from transformers import StoppingCriteria

    stops = [s for s in until if s]
    lookback = max(len(tokenizer.encode(s, add_special_tokens=False)) for s in stops) + 2

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            tails = tokenizer.batch_decode(input_ids[:, max(prompt_width, input_ids.shape[1] - lookback):], skip_special_tokens=True)
            return torch.tensor([any(s in tail for s in stops) for tail in tails], device=input_ids.device)

    return _Stop()


def cut_at_stop(text: str, until) -> str:
    cut = min((pos for s in until if s and (pos := text.find(s)) != -1), default=len(text))
    return text[:cut]


def _group(items, key) -> dict:
    groups = defaultdict(list)
    for i, item in enumerate(items):
        groups[key(item)].append(i)
    return groups


def _token_batches(order, length, budget, slack: float = 0.9):
    """Consecutive batches whose padded size (rows x longest) stays within the token budget.

    `order` runs longest first; a row shorter than `slack` x its batch's longest starts a new batch,
    so padding stays under 1 - slack of the batch. Measured on MMLU (W4): batching by the budget
    alone padded 200 items to 1.46x their tokens (50 items: 2.29x), and padding is computed like
    real tokens; with slack 0.9, 1.04x."""
    batch, longest = [], 0
    for i in order:
        longest_if = max(longest, length(i))
        if batch and (longest_if * (len(batch) + 1) > budget or length(i) < slack * longest):
            yield batch
            batch, longest_if = [], length(i)
        batch.append(i)
        longest = longest_if
    if batch:
        yield batch
