"""`make bench`: the benchmarks of issue 10 in turn, each writing its table to bench/results/.

Sizes are the quick ones that fit a 2-core CPU box; each script takes larger ones as flags.
`python -m bench --all` adds the slower agreement and training benches.
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ["report_speed.py"],                                                 # issue 8: 50 trials x 500 items
    ["limit.py", "--items", "50", "--reps", "3"],                        # W4
    ["lora_overhead.py", "--items", "10", "--reps", "3"],                # issue 11
    ["multi_adapter.py", "--k", "1,4,8", "--mmlu", "20", "--extraction", "3"],  # W1
    ["trial_anatomy.py"],                                                # W2
    ["sweep_efficiency.py", "--n", "4,12,36", "--items", "10"],          # W3
]
EXTRA = [
    ["lmeval_agreement.py"],
    ["train_throughput.py"],
]

if __name__ == "__main__":
    failed = []
    for bench in BENCHES + (EXTRA if "--all" in sys.argv else []):
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(HERE / bench[0]), *bench[1:]]).returncode
        print(f"== {bench[0]}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(bench[0])
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")
