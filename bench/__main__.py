"""`make bench`: the benchmarks of issue 10 in turn, each writing its table to bench/results/.

Sizes are the quick ones that fit a 2-core CPU box in under 30 minutes; each script takes larger
ones as flags. `python -m bench --all` adds the multi-LoRA overhead, W1 with generation, the
lm-eval agreement and the training benches.
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ["report_speed.py"],                                                 # issue 8: 50 trials x 500 items
    ["limit.py", "--items", "20", "--reps", "3"],                        # W4
    ["multi_adapter.py", "--k", "1,4,8", "--mmlu", "10", "--extraction", "0", "--lmeval-runs", "3"],  # W1
    ["trial_anatomy.py"],                                                # W2
    ["sweep_efficiency.py", "--lr", "1e-3,3e-3", "--n", "2,6,18", "--items", "3"],  # W3
    ["decisions.py", "--draws", "400"],                                  # issue 28: error rates by simulation, ~5 min
]
EXTRA = [
    ["lora_overhead.py", "--items", "10", "--reps", "3", "--dtypes", "float32"],  # issue 11
    ["multi_adapter.py", "--k", "1,4,8", "--mmlu", "10", "--extraction", "2", "--lmeval-runs", "3",
     "--table", "multi_adapter-generation"],                            # W1 with generation, ~13 min
    ["lmeval_agreement.py"],
    ["train_throughput.py"],                                             # fp32, padding-free, bf16 vs plain Trainer
    ["multi_adapter.py", "--k", "1,4,8", "--mmlu", "200", "--extraction", "50", "--lmeval-runs", "3",
     "--table", "multi_adapter-real"],                                   # W1 at real sizes (issue 22), ~45 min
    ["early_stopping.py", "--trials", "8", "--items", "96", "--backend", "vllm"],  # W6 (issue 22), ~20 min
    ["forecast_calibration.py", "--draws", "40"],                        # issue 29: the forecast's error rates, ~20 min
    ["forecast_accuracy.py", "--seeds", "3", "--items", "50"],           # W5 (issue 29): 10 sizes x 3 seeds, ~2 h
    ["adaptive_sizes.py", "--max", "512"],                               # W7 (issue 29): adaptive sizes vs a grid, ~35 min
    ["preference_methods.py", "--n", "64", "--items", "100"],              # issue 19: sft, orpo, sft→dpo, merge; ~25 min
]

if __name__ == "__main__":
    failed, start = [], time.perf_counter()
    for bench in BENCHES + (EXTRA if "--all" in sys.argv else []):
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(HERE / bench[0]), *bench[1:]]).returncode
        print(f"== {bench[0]}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(bench[0])
    print(f"== all: {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")
