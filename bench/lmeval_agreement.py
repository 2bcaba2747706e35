"""Issue-4 check: our per-item MMLU choices against lm-eval's own `hf` model on the same task config.

SmolLM2 (embedded default), float32, the same 200 topic-stratified items, cloze and letter formats.
lm-eval's HFLM gets the same ConfigurableTask object our scorer builds. Writes
bench/results/lmeval_agreement.md.   usage: python bench/lmeval_agreement.py [--limit 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.runtime import environment  # noqa: E402

environment.configure()

from common import write_table  # noqa: E402


def main(limit: int) -> None:
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from harness.models import load_causal_lm, load_tokenizer, resolve_base
    from harness.score import eval_command
    from harness.score.backends import make_candidate
    from harness.score.suites import load_suite
    from harness.score.suites.compiled import build_task
    from harness.stats.intervals import mean_ci

    base = resolve_base("default")
    rows = []
    for ref in ("mmlu", "mmlu_letter"):
        suite = load_suite(ref, limit)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            items = eval_command.run(base, [make_candidate("base", base)], [suite], "hf", out_dir=Path(tmp), use_cache=False)[0].items
        ours_s = time.perf_counter() - t0
        mine = items.set_index("item_id")["extra"].map(lambda e: max(range(4), key=json.loads(e)["logprobs"].__getitem__))
        t0 = time.perf_counter()
        lm = HFLM(pretrained=load_causal_lm(base), tokenizer=load_tokenizer(base), batch_size=16)
        out = lm_eval.simple_evaluate(model=lm, tasks=[build_task(suite)], log_samples=True, cache_requests=False)
        theirs_s = time.perf_counter() - t0
        samples = out["samples"][f"harness_{suite.name}"]
        theirs = {str(s["doc"]["id"]): max(range(4), key=lambda i: s["filtered_resps"][i][0]) for s in samples}
        their_acc = [float(s["acc"]) for s in samples]
        agree = sum(mine[i] == theirs[i] for i in theirs) / len(theirs)
        a, b = mean_ci(items["score"]), mean_ci(their_acc)
        rows.append([ref, len(theirs), f"{agree:.1%}", f"{a['value']:.4f} ± {a['stderr']:.4f}", f"{b['value']:.4f} ± {b['stderr']:.4f}",
                     f"{ours_s:.0f}", f"{theirs_s:.0f}"])
    write_table("lmeval_agreement", "MMLU per-item agreement: harness (hf backend) vs lm-eval HFLM, SmolLM2-135M fp32",
                ["suite", "items", "same choice", "harness acc ± stderr", "lm-eval acc ± stderr", "harness s", "lm-eval s"], rows,
                ["same task object (harness.score.suites.compiled.build_task) for both; no caches"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=200)
    main(parser.parse_args().limit)
