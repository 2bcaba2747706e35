"""Issue 19: candidates beyond SFT on SmolLM2, the extraction task, one n.

Trains, through the CLI, an SFT adapter on n rows, an ORPO adapter on n preference pairs, and a DPO
adapter on n pairs continuing the SFT one (sft→dpo); scores them with the base on the same extraction
items; merges the two best (`cat`, valid for any ranks) and scores the merge; writes F1 with 95% CIs,
the paired difference from SFT, and the time each candidate took to make.
usage: python bench/preference_methods.py [--n 64] [--items 100] [--lr 2e-3] [--dpo-lr 2e-4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
HARNESS = str(REPO / ".venv/bin/harness")
TRAIN = REPO / "suites/extraction/train.jsonl"
PREFS = REPO / "suites/extraction/train_prefs.jsonl"


def run(*args: str, cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([HARNESS, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"harness {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    from common import write_table

    from harness.stats.intervals import difference_estimate, mean_ci
    from harness.stats.summary import metric_frame
    from harness.store import results

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--lr", default="2e-3")
    p.add_argument("--dpo-lr", default="2e-4")
    p.add_argument("--beta", default="0.1")
    a = p.parse_args()
    common = ["--base", "default", "--n-samples", str(a.n), "--lora-r", "16", "--batch-size", "8", "--max-seq-len", "192",
              "--epochs", "1", "--dtype", "auto"]
    suite = str(REPO / "suites/extraction/suite.yaml")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        made = {
            "sft": run("train", *common, "--data", str(TRAIN), "--learning-rate", a.lr, "--out", "sft", cwd=tmp),
            "orpo": run("train", *common, "--method", "orpo", "--beta", a.beta, "--data", str(PREFS), "--learning-rate", a.lr,
                        "--out", "orpo", cwd=tmp),
            "sft→dpo": run("train", *common, "--method", "dpo", "--beta", a.beta, "--data", str(PREFS), "--init-adapter", "sft",
                           "--learning-rate", a.dpo_lr, "--out", "sft-dpo", cwd=tmp),
        }
        folders = {"sft": "sft", "orpo": "orpo", "sft→dpo": "sft-dpo"}
        train_s = {k: json.loads((tmp / f / "train.json").read_text())["train_s"] for k, f in folders.items()}
        adapters = [f"--adapter={k}={tmp / f}" for k, f in folders.items()]
        run("eval", "--base", "default", *adapters, "--suite", suite, "--limit", str(a.items), "--out", "scores", cwd=tmp)
        f1 = lambda items: metric_frame(items).query("metric == 'field_f1'")  # noqa: E731
        values = {c: g.set_index("item_id")["value"].astype(float) for c, g in f1(results.read_items(tmp / "scores")).groupby("candidate")}
        best = sorted(folders, key=lambda k: values[k].mean(), reverse=True)[:2]
        made["merge"] = run("merge", "--base", "default", *[f"--adapter={k.replace('→', '-')}={tmp / folders[k]}" for k in best],
                            "--method", "cat", "--out", "merged", cwd=tmp)
        run("eval", "--base", "default", f"--adapter=merge={tmp / 'merged'}", "--suite", suite, "--limit", str(a.items),
            "--out", "scores", cwd=tmp)
        values = {c: g.set_index("item_id")["value"].astype(float) for c, g in f1(results.read_items(tmp / "scores")).groupby("candidate")}
    rows = []
    for name in ("base", "sft", "orpo", "sft→dpo", "merge"):
        ci = mean_ci(values[name])
        vs = difference_estimate(values[name], values["sft"]) if name not in ("base", "sft") else None
        cost = ("—" if name == "base" else f"{train_s[name]:.0f} s training ({made[name]:.0f} s wall)" if name in train_s
                else f"{made[name]:.0f} s wall (no training; parents {' + '.join(best)})")
        rows.append([name, f"{ci['value']:.3f} [{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]",
                     "" if vs is None else "{:+.3f} [{:+.3f}, {:+.3f}] (two-sided p {:.3f})".format(
                         vs.value, *vs.interval(0.05), min(1.0, 2 * min(vs.p_above(0.0), vs.p_below(0.0)))), cost])
    write_table("preference_methods", f"Candidates beyond SFT: SmolLM2-135M on extraction, n = {a.n} rows / pairs",
                ["candidate", "extraction field_f1 [95% CI]", "Δ vs sft, paired [95% CI]", "time to make"], rows,
                [f"sft: {a.n} rows of train.jsonl; orpo: {a.n} pairs of train_prefs.jsonl, beta {a.beta}; sft→dpo: dpo on {a.n} pairs "
                 f"from the sft adapter (reference = that adapter), beta {a.beta}, learning rate {a.dpo_lr}; merge: cat of the two best",
                 f"all: LoRA rank 16, 1 epoch, batch 8, max_seq_len 192, learning rate {a.lr} (dpo: {a.dpo_lr}), dtype auto; "
                 f"{a.items} extraction items, hf backend, float32 scoring",
                 "time to make: the training loop's seconds from train.json, and the command's wall time (model load, held-out "
                 "evaluation before and after)",
                 "cat with weights 1, 1 adds the two adapters' full deltas: two adaptations to one task stacked, not averaged "
                 "(linear with --weights 0.5,0.5 averages adapters of equal rank)"])


if __name__ == "__main__":
    main()
