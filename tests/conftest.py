"""Shared fixtures: the real SmolLM2 (prepared once into the harness cache) and a tiny real Llama.

The tiny model is built on the fly from a config with SmolLM2's tokenizer (so it has the real ChatML
chat template), random weights, float32, ~3.5 M parameters: every pipeline stage runs for real on it
in seconds. head_dim is 32 because vLLM's CPU attention rejects 16.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runtime import environment

environment.configure()

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    from harness.models import resolve_base

    return Path(resolve_base("default").path)


def build_tiny_llama(out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, smollm2_dir) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_dir)


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run the real `harness` console entry point in a child process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
    )


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model, tmp_path_factory) -> dict[str, Path]:
    """Two real adapters of different ranks trained on the tiny model (a few steps each)."""
    from harness.config import TrainConfig
    from harness.models import resolve_base
    from harness.train import train

    root = tmp_path_factory.mktemp("adapters")
    base = resolve_base(str(tiny_model))
    out = {}
    for name, rank, seed in (("r8", 8, 1), ("r4", 4, 2)):
        cfg = TrainConfig(data=REPO / "suites/extraction/train.jsonl", n_samples=32, lora_r=rank, learning_rate=2e-2,
                          max_steps=3, batch_size=8, max_seq_len=192, seed=seed, dtype="float32")
        train(base, cfg, root / name)
        out[name] = root / name
    return out


@pytest.fixture()
def harness_home(tmp_path, monkeypatch) -> Path:
    """A private HARNESS_HOME (fresh response cache), sharing the prepared model directory."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    real = Path(os.environ.get("HARNESS_HOME", Path.home() / ".cache" / "harness")) / "models"
    for entry in real.iterdir() if real.exists() else []:
        (home / "models" / entry.name).symlink_to(entry)
    monkeypatch.setenv("HARNESS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def rank64_adapter(tiny_model, tmp_path_factory) -> Path:
    """A rank-64 adapter: the largest rank the parity tests cover (vLLM pads ranks to its buckets)."""
    from harness.config import TrainConfig
    from harness.models import resolve_base
    from harness.train import train

    out = tmp_path_factory.mktemp("r64") / "r64"
    cfg = TrainConfig(data=REPO / "suites/extraction/train.jsonl", n_samples=16, lora_r=64, learning_rate=1e-2,
                      max_steps=2, batch_size=8, max_seq_len=192, seed=3, dtype="float32")
    train(resolve_base(str(tiny_model)), cfg, out)
    return out
