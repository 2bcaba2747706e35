"""`harness serve`: vLLM's OpenAI-compatible server for the base model and its adapters.

Bound to 127.0.0.1 unless told otherwise; run-time adapter loading is on, so a remote
`harness eval --backend vllm --server URL` can add candidates; on CPU the harness plugin is loaded
by vLLM through its entry point. The server is a child process in its own process group: Ctrl-C or SIGTERM to `harness serve` stops
the whole group, and it dies with `harness serve` even when that is killed outright.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness.errors import UserError
from harness.models import BaseModel
from harness.runtime import processes
from harness.runtime.environment import vllm_cpu_env
from harness.score.backends.vllm import VLLM_LORA_RANKS, adapter_rank


def server_command(base: BaseModel, adapters: list[tuple[str, Path]], host: str, port: int, dtype: str,
                   max_lora_rank: int, max_loras: int) -> list[str]:
    from transformers import AutoConfig

    max_len = min(4096, AutoConfig.from_pretrained(base.path).max_position_embeddings)
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", host, "--port", str(port),
           "--model", base.path, "--served-model-name", "base", "--dtype", dtype, "--max-model-len", str(max_len), "--seed", "0"]
    rank = max([max_lora_rank, *(adapter_rank(p) for _, p in adapters)])
    cmd += ["--enable-lora", "--max-lora-rank", str(next(r for r in VLLM_LORA_RANKS if r >= rank)),
            "--max-loras", str(max(max_loras, len(adapters)))]
    if adapters:
        cmd += ["--lora-modules", *(json.dumps({"name": n, "path": str(p.resolve())}) for n, p in adapters)]
    return cmd


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> list[str]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise UserError(f"vLLM server exited with code {proc.returncode} before it was ready (see its log above)")
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=5) as resp:
                return [m["id"] for m in json.loads(resp.read())["data"]]
        except OSError:
            time.sleep(1)
    raise UserError(f"vLLM server not ready after {timeout:.0f} s")


def start(base: BaseModel, adapters, host="127.0.0.1", port=8000, dtype="float32", max_lora_rank=64, max_loras=8, log=None):
    env = {**os.environ, **vllm_cpu_env()}
    cmd = server_command(base, adapters, host, port, dtype, max_lora_rank, max_loras)
    # A session of its own: Ctrl-C and SIGTERM reach us, and we stop the whole server group ourselves
    # (vLLM's API server shuts down cleanly on SIGINT); if we are killed outright, it gets SIGTERM.
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT if log else None, start_new_session=True,
                            preexec_fn=processes.die_with_parent)
    return proc, f"http://{host}:{port}"


def stop(proc: subprocess.Popen, grace: float = 15) -> None:
    processes.stop(proc, signal.SIGINT, grace)
