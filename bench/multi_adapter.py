"""W1 (issues 5, 10, 11): scoring K adapters of SmolLM2, side by side in one run.

  harness-vllm   `harness eval --backend vllm`: ONE engine, base + K adapters batched together
  harness-hf     `harness eval --backend hf`: one base model, adapters switched in one PeftModel
  lmeval-hf      lm-eval once per adapter, `--model hf` with `peft=` (its documented LoRA path)
  lmeval-vllm    lm-eval once per adapter, `--model vllm` with `lora_local_path=`
Each lm-eval run is a fresh process (as its CLI is), one per adapter: K adapters cost the first K
runs, or, past `--lmeval-runs N` runs, K x their median (every run does the same work). lm-eval
gets the very task objects harness builds, so the items are identical. Harness also scores the
base model (K+1 candidates).
Adapters are rank-16 LoRAs with random weights (speed and agreement do not need trained ones).
Agreement: per-item MMLU choice and extraction text, against harness-hf.
usage: python bench/multi_adapter.py [--k 1,4] [--mmlu 200] [--extraction 100] [--lmeval-runs N] [--table NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGETS = {4: 4.0, 8: 6.0}  # K -> speed-up over lm-eval-hf (issue 22)
sys.path.insert(0, str(HERE))


def suite_files(folder: Path, mmlu: int, extraction: int) -> list[Path]:
    (folder / "mmlu.yaml").write_text((REPO / "suites/mmlu.yaml").read_text().replace("  sweep: 100", f"  full: {mmlu}"))
    ext = (REPO / "suites/extraction/suite.yaml").read_text().replace("  sweep: 100", f"  full: {extraction}")
    ext = ext.replace("path: dev.jsonl", f"path: {REPO / 'suites/extraction/dev.jsonl'}")
    (folder / "extraction.yaml").write_text(ext)
    return [folder / "mmlu.yaml"] + ([folder / "extraction.yaml"] if extraction else [])  # 0: MMLU only


def harness_eval(backend: str, adapters: list[Path], suites: list[Path], out: Path) -> float:
    cmd = [str(REPO / ".venv/bin/harness"), "eval", "--backend", backend, "--no-cache", "--out", str(out)]
    cmd += sum((["--adapter", f"a{i}={p}"] for i, p in enumerate(adapters)), []) + sum((["--suite", str(s)] for s in suites), [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - t0


def lmeval_worker(model: str, adapter: str, suites: list[str], out: str) -> None:
    """One lm-eval run for one adapter, as its CLI would do it; writes per-item answers."""
    from harness.runtime import environment

    environment.configure()
    import lm_eval

    from harness.models import load_tokenizer, resolve_base
    from harness.score.suites import load_suite
    from harness.score.suites.compiled import build_task

    base = resolve_base("default")
    tok = load_tokenizer(base)
    tasks = []
    for ref in suites:
        suite = load_suite(ref, scope="full")
        tasks.append(build_task(suite, tok))
    if model == "hf":
        import torch

        args = f"pretrained={base.path},peft={adapter},dtype=float32,device={'cuda' if torch.cuda.is_available() else 'cpu'}"
    else:
        args = f"pretrained={base.path},enable_lora=True,lora_local_path={adapter},max_lora_rank=16,dtype=float32,max_model_len=2048"
    res = lm_eval.simple_evaluate(model=model, model_args=args, tasks=tasks, log_samples=True, cache_requests=False,
                                  batch_size=16 if model == "hf" else "auto")
    answers = {}
    for name, samples in res["samples"].items():
        for s in samples:
            r = s["filtered_resps"]
            answers[f"{name.removeprefix('harness_')}/{s['doc']['id']}"] = (
                max(range(len(r)), key=lambda i: r[i][0]) if isinstance(r[0], (list, tuple)) else r[0])
    Path(out).write_text(json.dumps(answers))


def lmeval_runs(model: str, adapters: list[Path], suites: list[Path], tmp: Path) -> tuple[list[float] | None, dict, str]:
    """One lm-eval process per adapter; returns each run's seconds (K adapters cost the first K runs)."""
    from harness.runtime.environment import vllm_cpu_env

    env = {**os.environ, **(vllm_cpu_env() if model == "vllm" else {})}
    seconds, answers = [], {}
    for i, adapter in enumerate(adapters):
        out = tmp / f"lmeval-{model}-{i}.json"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", model, "--adapter", str(adapter), "--out", str(out),
                               *sum((["--suite", str(s)] for s in suites), [])], capture_output=True, text=True, env=env, cwd=REPO)
        seconds.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            return None, {}, (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
        answers[f"a{i}"] = json.loads(out.read_text())
    return seconds, answers, ""


def harness_answers(out: Path) -> dict:
    import pandas as pd

    items = pd.read_parquet(out / "items.parquet")
    answers: dict = {}
    for row in items.itertuples():
        value = row.prediction
        if row.suite == "mmlu":
            lps = json.loads(row.extra)["logprobs"]
            value = max(range(len(lps)), key=lps.__getitem__)
        answers.setdefault(row.candidate, {})[f"{row.suite}/{row.item_id}"] = value
    return answers


def agreement(ours: dict, ref: dict) -> str:
    parts = []
    for suite in ("mmlu", "extraction"):
        keys = [k for cand in ref for k in ref[cand] if k.startswith(suite + "/") and cand in ours]
        if keys:
            same = sum(ours[c][k] == ref[c][k] for c in ref if c in ours for k in ref[c] if k.startswith(suite + "/"))
            parts.append(f"{suite} {same / len(keys):.1%}")
    return ", ".join(parts)


def per_k(seconds: list[float] | None, k: int) -> float | None:
    """lm-eval's time for K adapters: the sum of K runs, or K x the median where fewer ran."""
    if not seconds:
        return None
    return sum(seconds[:k]) if k <= len(seconds) else k * statistics.median(seconds)


def main(a: argparse.Namespace) -> None:
    from common import write_table

    from harness.runtime import environment

    environment.configure()
    from harness.models import resolve_base
    from harness.score.backends.parity import random_adapters

    ks, mmlu, extraction = [int(x) for x in a.k.split(",")], a.mmlu, a.extraction
    base = resolve_base("default")
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        suites = suite_files(tmp, mmlu, extraction)
        all_adapters = random_adapters(base, environment.harness_home() / "bench-adapters-w1", ranks=(16,) * max(ks))
        # lm-eval runs one process per adapter, independent of K: run them once, K costs the first K.
        lm_adapters = all_adapters[:a.lmeval_runs or max(ks)]
        lm_hf_s, lm_hf, err_hf = lmeval_runs("hf", lm_adapters, suites, tmp)
        lm_vllm_s, lm_vllm, err_vllm = lmeval_runs("vllm", lm_adapters, suites, tmp) if a.lmeval_vllm else (None, {}, "not run (--lmeval-vllm)")
        for k in ks:
            adapters = all_adapters[:k]
            t_hf = harness_eval("hf", adapters, suites, tmp / f"hf-{k}")
            ref = harness_answers(tmp / f"hf-{k}")
            t_vllm = harness_eval("vllm", adapters, suites, tmp / f"vllm-{k}")
            vllm_answers = harness_answers(tmp / f"vllm-{k}")
            t_lm_hf, t_lm_vllm = per_k(lm_hf_s, k), per_k(lm_vllm_s, k)
            first_k = {f"a{i}" for i in range(k)}
            peer = t_lm_hf or float("nan")
            target = TARGETS.get(k)

            def verdict(seconds: float) -> str:
                return "" if target is None else ("met" if peer / seconds >= target else f"MISSED (target {target}x)")

            rows.append([k, "harness-vllm", f"{t_vllm:.0f}", f"{peer / t_vllm:.2f}", agreement(vllm_answers, ref), verdict(t_vllm)])
            rows.append([k, "harness-hf", f"{t_hf:.0f}", f"{peer / t_hf:.2f}", "reference", verdict(t_hf)])
            rows.append([k, "lmeval-hf (per adapter)", f"{t_lm_hf:.0f}" if t_lm_hf else f"failed: {err_hf}", "1.00" if t_lm_hf else "-",
                         agreement({c: v for c, v in lm_hf.items() if c in first_k}, ref), ""])
            if a.lmeval_vllm:
                rows.append([k, "lmeval-vllm (per adapter)", f"{t_lm_vllm:.0f}" if t_lm_vllm else f"failed: {err_vllm}",
                             f"{peer / t_lm_vllm:.2f}" if t_lm_vllm else "-", agreement({c: v for c, v in lm_vllm.items() if c in first_k}, ref), ""])
    write_table(a.table, "W1: scoring K adapters of SmolLM2-135M (fp32), whole wall time",
                ["K", "system", "seconds", "speed-up vs lm-eval-hf", "item agreement with harness-hf", "verdict"], rows,
                [f"MMLU cloze {mmlu} items" + (f" + extraction {extraction} items (greedy, up to 96 tokens)" if extraction else "") + "; no caches",
                 "harness scores base + K adapters; lm-eval scores the K adapters, one process each"
                 + (f" (ran {len(lm_adapters)}: larger K = K x their median, {statistics.median(lm_hf_s):.0f} s)"
                    if lm_hf_s and len(lm_adapters) < max(ks) else ""),
                 "targets (issue 22): both harness backends >= 4x lm-eval-hf at K=4 and >= 6x at K=8, items agreeing 100%"])


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--worker")
    p.add_argument("--adapter")
    p.add_argument("--out")
    p.add_argument("--suite", action="append", default=[])
    p.add_argument("--k", default="1,4")
    p.add_argument("--mmlu", type=int, default=200)
    p.add_argument("--extraction", type=int, default=100, help="extraction items (generation); 0 leaves the suite out")
    p.add_argument("--table", default="multi_adapter", help="name of the table in bench/results/")
    p.add_argument("--lmeval-runs", type=int, help="lm-eval processes to run (default: the largest K); larger K use K x their median")
    p.add_argument("--lmeval-vllm", action="store_true", help="also run lm-eval --model vllm per adapter (its LoRA path is vLLM's slow stock CPU op)")
    a = p.parse_args()
    if a.worker:
        lmeval_worker(a.worker, a.adapter, a.suite, a.out)
    else:
        main(a)
