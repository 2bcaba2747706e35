"""W4 (issue 10): how far scoring runs from this machine's physical limits, both backends.

Measured in one run, each part in its own process (vLLM needs its CPU environment):
  matmul peak    torch dense matmul (2048^3) in float32, the dtype we score in: FLOP/s
  memory bw      torch copy of a 512 MiB tensor: bytes read + written per second
  prefill        MMLU cloze requests, one choice per item (loglikelihood, base model): tokens/s, and 2 x params x tokens/s
                 as a fraction of the matmul peak
  generation     greedy decode at batch 1 (64 minus 1 new tokens: prefill cancels out): tokens/s x
                 weight bytes read per token, as a fraction of the memory bandwidth (decode's bound)
Target (issue 10): scoring at >= 50% of the measured matmul peak.
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
    from harness.score.lmeval import build_task
    from harness.score.suites import load_suite

    base = resolve_base("default")
    cand = make_candidate("base", base)
    backend = create(kind, base, [cand])
    task = build_task(load_suite("mmlu", items))
    task.build_all_requests(limit=None)
    # One choice per item: distinct contexts, so the hf backend's context packing saves nothing and
    # the figure is the machine's forward throughput, not an algorithmic saving.
    ll = [LoglikelihoodRequest(cand, *inst.args) for inst in task.instances if inst.idx == 0]
    backend.loglikelihood(ll[:8])  # load and warm up
    prefill = []
    for _ in range(reps):
        t0 = time.perf_counter()
        tokens = sum(r[2] for r in backend.loglikelihood(ll))
        prefill.append(tokens / (time.perf_counter() - t0))
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
    return {"prefill_tok_s": statistics.median(prefill), "decode_tok_s": statistics.median(decode), "params": params}


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
    for kind in ("hf", "vllm"):
        r = run_worker(kind, items, reps)
        flops = 2 * r["params"] * r["prefill_tok_s"]
        share = flops / peak["flops"]
        rows.append([f"{kind}: prefill (MMLU loglikelihood)", f"{r['prefill_tok_s']:.0f} tok/s", f"{flops / 1e9:.1f} GFLOP/s",
                     f"{share:.0%} of matmul peak", "met" if share >= 0.5 else "MISSED (target 50%)"])
        bytes_s = r["decode_tok_s"] * r["params"] * 4
        rows.append([f"{kind}: decode batch 1 (64 tokens)", f"{r['decode_tok_s']:.1f} tok/s", f"{bytes_s / 1e9:.1f} GB/s of weights",
                     f"{bytes_s / peak['bandwidth']:.0%} of memory bw", ""])
    write_table("limit", "W4: distance to this machine's limits, SmolLM2-135M float32",
                ["what", "throughput", "as work", "fraction of the limit", "verdict"], rows,
                [f"params {r['params'] / 1e6:.1f} M (tied embeddings counted once; the lm_head matmul is real work)",
                 f"MMLU cloze {items} items, {reps} repetitions, medians; prefill FLOP = 2 x params x tokens",
                 "target: scoring (prefill) at >= 50% of the measured fp32 matmul peak"])


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
