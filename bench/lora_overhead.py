"""Issue 11: what multi-LoRA costs inside ONE vLLM engine on this CPU, with and without our plugin.

Workload: prompt-logprob scoring (the MMLU cloze pattern: one prefill per choice) of the same
prompts on SmolLM2. Configurations, same prompts:
  no-lora      engine with enable_lora=False
  lora-base    LoRA engine, base requests only
  lora-1       LoRA engine, all requests on one adapter
  lora-4-mix   LoRA engine, requests spread over 4 adapters, interleaved with base requests
  stock-4-mix  as lora-4-mix but with vLLM's own CPU LoRA ops (plugin off), on fewer prompts
Three engines, each in a fresh process: no-lora; the LoRA engine, which runs lora-base, lora-1
and lora-4-mix with their repetitions interleaved; stock.
Table of tokens/s and the ratio to no-lora in bench/results/lora_overhead.md.
usage: python bench/lora_overhead.py [--items 100] [--reps 3] [--dtypes float32,bfloat16]
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


ENGINES = {"no-lora": ["no-lora"], "lora": ["lora-base", "lora-1", "lora-4-mix"], "stock": ["stock-4-mix"]}


def worker(engine: str, dtype: str, items: int, reps: int) -> list[dict]:
    from harness.runtime import environment

    environment.configure()
    os.environ.update(environment.vllm_cpu_env())
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    from harness.models import load_tokenizer, resolve_base
    from harness.score.backends.parity import random_adapters
    from harness.score.backends.tokens import encode_pair
    from harness.score.suites import load_suite
    from harness.score.suites.compiled import build_task

    if engine != "stock":
        from harness.score.backends.vllm_plugin import register

        register()
    base = resolve_base("default")
    tok = load_tokenizer(base)
    task = build_task(load_suite("mmlu", items))
    task.build_all_requests(limit=None)
    prompts = [TokensPrompt(prompt_token_ids=sum(encode_pair(tok, *inst.args), [])) for inst in task.instances]
    tokens = sum(len(p["prompt_token_ids"]) for p in prompts)
    adapters = random_adapters(base, environment.harness_home() / "bench-adapters", ranks=(16, 16, 16, 16))
    llm = LLM(model=base.path, dtype=dtype, seed=0, max_model_len=2048, max_num_seqs=64, enable_prefix_caching=False,
              **({"enable_lora": True, "max_loras": 4, "max_lora_rank": 16} if engine != "no-lora" else {}))
    reqs = [LoRARequest(f"a{i}", i + 1, str(p)) for i, p in enumerate(adapters)]
    assign = {"no-lora": [None] * len(prompts), "lora-base": [None] * len(prompts), "lora-1": [reqs[0]] * len(prompts)}
    # 4 adapters and the base, interleaved request by request
    assign["lora-4-mix"] = assign["stock-4-mix"] = [([None] + reqs)[i % 5] for i in range(len(prompts))]
    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
    warm = assign[ENGINES[engine][-1]][:8]  # the engine's most mixed config: warm-up, adapters loaded
    llm.generate(prompts[:8], params, lora_request=warm, use_tqdm=False)
    times = {config: [] for config in ENGINES[engine]}
    for _ in range(reps):  # configs interleaved, so drifts in the machine's speed hit them alike
        for config in times:
            t0 = time.perf_counter()
            llm.generate(prompts, params, lora_request=assign[config], use_tqdm=False)
            times[config].append(time.perf_counter() - t0)
    return [{"config": c, "dtype": dtype, "tokens": tokens, "prompts": len(prompts), "seconds": statistics.median(t), "reps": reps}
            for c, t in times.items()]


def run(engine: str, dtype: str, items: int, reps: int) -> list[dict]:
    from harness.runtime.environment import vllm_cpu_env

    env = {**os.environ, **vllm_cpu_env(), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, __file__, "--worker", engine, "--dtype", dtype, "--items", str(items), "--reps", str(reps)],
                          capture_output=True, text=True, env=env, timeout=3600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("[")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return [{"config": c, "dtype": dtype, "error": tail[:160]} for c in ENGINES[engine]]
    return json.loads(lines[-1])


def main(items: int, reps: int, dtypes: list[str]) -> None:
    from common import write_table

    rows = []
    for dtype in dtypes:
        results = run("no-lora", dtype, items, reps) + run("lora", dtype, items, reps) + run("stock", dtype, max(8, items // 4), 1)
        ref = results[0].get("tokens", 0) / results[0]["seconds"] if "seconds" in results[0] else None
        for r in results:
            if "error" in r:
                rows.append([dtype, r["config"], "-", "-", "-", f"failed: {r['error']}"])
                continue
            tps = r["tokens"] / r["seconds"]
            rows.append([dtype, r["config"], r["prompts"], r["tokens"], f"{tps:.0f}", f"{tps / ref:.2f}" if ref else "-"])
    write_table("lora_overhead", "Multi-LoRA overhead in one vLLM engine (SmolLM2-135M, prompt-logprob scoring)",
                ["dtype", "config", "prompts", "tokens", "tokens/s (median)", "ratio to no-lora"], rows,
                [f"MMLU cloze prompts ({items} items x 4 choices), median of {reps} runs; stock-4-mix: 1 run on a quarter of the prompts",
                 "lora-4-mix target: >= 0.75 of no-lora (issue 11)"])
    if any(row[-1].startswith("failed") for row in rows):
        sys.exit("lora_overhead: a configuration failed (see the table)")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--worker")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--items", type=int, default=50)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.dtype, a.items, a.reps)))
    else:
        main(a.items, a.reps, a.dtypes.split(","))
