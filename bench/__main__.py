"""`make bench`: every benchmark in turn; each writes its table to bench/results/."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ["lora_overhead.py"],
    ["multi_adapter.py", "--k", "1,4"],
    ["train_throughput.py"],
    ["lmeval_agreement.py"],
]

if __name__ == "__main__":
    failed = [b[0] for b in BENCHES if subprocess.run([sys.executable, str(HERE / b[0]), *b[1:]]).returncode != 0]
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")
