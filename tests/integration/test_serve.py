"""`harness serve` and the backend's remote-server mode, against the real vLLM OpenAI server."""

import json
import socket
import urllib.request

import pandas as pd
import psutil
import pytest
from conftest import free_port, run_cli

from harness.models import resolve_base
from harness.score.backends import (
    GenerateRequest,
    LoglikelihoodRequest,
    create,
    make_candidate,
    serve,
)

pytestmark = pytest.mark.needs("vllm")


@pytest.fixture(scope="module")
def server(tiny_model, tiny_adapters, tmp_path_factory):
    log = open(tmp_path_factory.mktemp("serve") / "server.log", "w")
    base = resolve_base(str(tiny_model))
    proc, url = serve.start(base, [("r8", tiny_adapters["r8"])], port=free_port(), log=log)
    try:
        models = serve.wait_ready(url, proc, timeout=300)
        yield base, url, models, proc
    finally:
        serve.stop(proc)
        log.close()


def test_serves_adapters_on_loopback_and_answers_each(server):
    base, url, models, proc = server
    assert models == ["base", "r8"]
    listening = [c.laddr for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
                 for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    for model in models:
        body = json.dumps({"model": model, "prompt": "Invoice INV-1 from", "max_tokens": 4, "temperature": 0}).encode()
        req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert json.loads(resp.read())["choices"][0]["text"]


def test_server_mode_matches_transformers_with_runtime_loaded_adapter(server, tiny_adapters, rank64_adapter):
    base, url, _, _ = server
    # r8 is served by name; r64 is unknown to the server and gets loaded at run time (ranks 8 and 64).
    cands = [make_candidate("base", base), make_candidate("r8", base, tiny_adapters["r8"]), make_candidate("r64", base, rank64_adapter)]
    reqs = [LoglikelihoodRequest(c, ctx, cont) for ctx, cont in [("The capital of France is", " Paris."), ("2 + 2 =", " 4")] for c in cands]
    remote, local = create("vllm", base, cands, server=url), create("hf", base, cands)
    for req, (a, ga, _), (b, gb, _) in zip(reqs, local.loglikelihood(reqs), remote.loglikelihood(reqs), strict=True):
        assert abs(a - b) < 1e-3 and ga == gb, (req.candidate.name, a, b)
    gens = [GenerateRequest(c, "Hello there", (), 10) for c in cands]
    assert [t for t, _ in local.generate(gens)] == [t for t, _ in remote.generate(gens)]


def test_sigterm_to_harness_serve_stops_the_server_and_frees_the_port(tiny_model, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    port = free_port()
    # --host 127.0.0.2: bound there only; --max-lora-rank 16: what the vLLM server is started with.
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", "--base", str(tiny_model), "--port", str(port),
                             "--host", "127.0.0.2", "--max-lora-rank", "16"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.2:{port}/v1/models"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5):
                break
        except OSError:
            time.sleep(1)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert tree, "the vLLM server runs as a child of harness serve"
    argv = next(p.cmdline() for p in tree if "--max-lora-rank" in p.cmdline())
    assert argv[argv.index("--max-lora-rank") + 1] == "16" and argv[argv.index("--host") + 1] == "127.0.0.2"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # only the address asked for
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 128 + signal.SIGTERM
    _, alive = psutil.wait_procs(tree, timeout=60)
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), timeout=2):
        pass


def test_eval_against_a_running_server_through_the_cli(server, tiny_model, tiny_adapters, tmp_path, harness_home):
    """harness eval --backend vllm --server URL: scored by the server (recorded as vllm), with the same
    choices as the hf backend."""
    _, url, _, _ = server
    args = ["eval", "--base", str(tiny_model), "--adapter", f"r8={tiny_adapters['r8']}", "--suite", "mmlu", "--limit", "6"]
    remote = run_cli(*args, "--backend", "vllm", "--server", url, "--out", str(tmp_path / "remote"))
    local = run_cli(*args, "--out", str(tmp_path / "local"))
    assert remote.returncode == 0 and local.returncode == 0, remote.stderr[-2000:] + local.stderr[-2000:]
    remote_items, local_items = (pd.read_parquet(tmp_path / name / "items.parquet") for name in ("remote", "local"))
    assert set(remote_items.backend) == {"vllm"} and set(local_items.backend) == {"hf"}
    assert list(remote_items.prediction) == list(local_items.prediction)


def test_doctor_parity_against_a_running_server(server, tiny_model):
    """harness doctor --parity --server URL: the server's scores (base, two run-time loaded LoRAs) agree
    with transformers'; a server that is not there is a clear failure, not a hang."""
    _, url, _, _ = server
    proc = run_cli("doctor", "--parity", "--base", str(tiny_model), "--server", url, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    agree = proc.stdout.split("parity hf vs vllm (float32): ", 1)[1].split(" checks agree")[0]
    good, total = map(int, agree.split("/"))
    assert good == total >= 8, proc.stdout
    gone = run_cli("doctor", "--parity", "--base", str(tiny_model), "--server", f"http://127.0.0.1:{free_port()}", timeout=300)
    assert gone.returncode == 2 and "--server http://127.0.0.1:" in gone.stderr and "not reachable" in gone.stderr, gone.stderr[-2000:]
    assert "Traceback" not in gone.stderr
