"""Adapters made anywhere: saved by plain peft (as Unsloth, Axolotl or a notebook save them), of the
kinds vLLM cannot score. `--backend vllm` refuses them in seconds naming each and why; `--backend
auto` scores them on hf and the rest on the one vllm engine, item for item as hf alone does; one
candidate's failure costs no other its items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_cli

from harness.models import resolve_base
from harness.score import eval_command
from harness.score.backends import create, make_candidate
from harness.score.suites import load_suite

pytestmark = pytest.mark.needs("vllm")

# name -> (LoraConfig arguments, what vLLM is told it cannot do)
KINDS = {
    "plain": ({"target_modules": "all-linear"}, None),
    "dora": ({"target_modules": ["q_proj", "v_proj"], "use_dora": True}, "DoRA"),
    "saved": ({"target_modules": ["q_proj", "v_proj"], "modules_to_save": ["embed_tokens", "lm_head"]}, "modules_to_save"),
    "head": ({"target_modules": ["q_proj", "lm_head"]}, "lm_head"),
}


@pytest.fixture(scope="module")
def foreign(tiny_model, tmp_path_factory) -> dict[str, Path]:
    """One adapter of each kind on the tiny base, saved by peft itself, with random non-zero weights (a
    fresh LoRA's B is 0: it would change nothing and agree with anything)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("foreign")
    out = {}
    for i, (name, (options, _)) in enumerate(KINDS.items()):
        torch.manual_seed(10 + i)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                               LoraConfig(r=8, lora_alpha=8, init_lora_weights=False, task_type="CAUSAL_LM", **options))
        with torch.no_grad():
            for param_name, param in model.named_parameters():
                if "lora_B" in param_name:
                    param.mul_(0.05)
                elif "modules_to_save" in param_name:  # the saved copy differs from the base's
                    param.add_(0.01 * torch.randn_like(param))
        model.save_pretrained(root / name)
        out[name] = root / name
    return out


def adapter_args(foreign: dict[str, Path]) -> list[str]:
    return [arg for name, path in foreign.items() for arg in ("--adapter", f"{name}={path}")]


def small_suites(tmp_path: Path) -> list[str]:
    """MMLU (log-likelihoods) and a 3-row extraction copy (generation), both at tiny-model speed."""
    folder = tmp_path / "extraction"
    folder.mkdir()
    (folder / "dev.jsonl").write_text("\n".join((REPO / "suites/extraction/dev.jsonl").read_text().splitlines()[:3]) + "\n")
    (folder / "suite.yaml").write_text((REPO / "suites/extraction/suite.yaml").read_text().replace("max_tokens: 96", "max_tokens: 12"))
    return ["--suite", "mmlu", "--limit", "6", "--suite", str(folder / "suite.yaml")]


def test_vllm_refuses_each_adapter_it_cannot_score_before_the_engine_starts(tiny_model, foreign, tmp_path, harness_home):
    proc = run_cli("eval", "--base", str(tiny_model), "--backend", "vllm", *adapter_args(foreign), "--suite", "mmlu", "--limit", "2",
                   "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for name, (_, reason) in KINDS.items():
        named = f"--adapter {name}={foreign[name]}"
        assert (named in errors[0]) == (reason is not None), (name, errors[0])
        if reason:  # each adapter's own reason right after its name
            assert reason in errors[0].split(named, 1)[1].split("--adapter")[0], (name, errors[0])
    assert "--backend auto" in errors[0] and "--backend hf" in errors[0]
    assert "starting the vllm engine" not in proc.stderr and not (tmp_path / "o" / "items.parquet").exists()
    # harness serve (vLLM's server) checks its adapters the same way, before the server starts
    served = run_cli("serve", "--base", str(tiny_model), "--adapter", f"plain={foreign['plain']}", "--adapter", f"dora={foreign['dora']}",
                     "--port", "1")
    assert served.returncode == 2 and "Traceback" not in served.stderr, served.stderr[-2000:]
    assert f"--adapter dora={foreign['dora']}: vLLM does not yet support DoRA" in served.stderr and "plain=" not in served.stderr


def test_auto_scores_every_candidate_as_hf_does_and_records_which_backend(tiny_model, foreign, tmp_path, harness_home):
    suites = small_suites(tmp_path)
    runs = {kind: run_cli("eval", "--base", str(tiny_model), "--backend", kind, *adapter_args(foreign), *suites,
                          "--out", str(tmp_path / kind), timeout=900) for kind in ("auto", "hf")}
    assert all(p.returncode == 0 for p in runs.values()), {k: p.stderr[-3000:] for k, p in runs.items()}
    assert runs["auto"].stderr.count("starting the vllm engine") == 1, "one engine for the candidates it can score"
    items = {kind: pd.read_parquet(tmp_path / kind / "items.parquet").sort_values(["candidate", "suite", "item_id"], ignore_index=True)
             for kind in runs}
    auto, hf = items["auto"], items["hf"]
    scored_on = auto.groupby("candidate")["backend"].unique().map(list).to_dict()
    assert scored_on == {"base": ["vllm"], "plain": ["vllm"], "dora": ["hf"], "saved": ["hf"], "head": ["hf"]}, scored_on
    assert len(auto) == len(hf) == 5 * (6 + 3)
    cols = ["candidate", "suite", "item_id", "prediction", "score"]
    pd.testing.assert_frame_equal(auto[cols], hf[cols])
    # Choice log-probs: within the parity tolerance where vllm scored, identical where hf did; and each
    # foreign adapter really changes the model (not an agreement of five copies of the base).
    logprobs = {kind: np.array(frame[frame.suite == "mmlu"].extra.map(lambda e: json.loads(e)["logprobs"]).tolist()).reshape(5, 6, 4)
                for kind, frame in items.items()}
    names = sorted(scored_on)  # the frames' candidate order
    for i, name in enumerate(names):
        gap = np.abs(logprobs["auto"][i] - logprobs["hf"][i]).max()
        assert gap < 1e-3 if scored_on[name] == ["vllm"] else gap == 0, (name, gap)
        if name != "base":
            assert np.abs(logprobs["hf"][i] - logprobs["hf"][names.index("base")]).max() > 1e-3, name
    scores = json.loads((tmp_path / "auto" / "scores.json").read_text())
    assert {c["name"]: c["backend"] for c in scores["candidates"]} == {k: v[0] for k, v in scored_on.items()}
    assert scores["backend"] == "auto" and scores["schema_version"] == 2


def test_a_candidate_the_engine_fails_on_costs_no_other_its_items(tiny_model, foreign, tmp_path, harness_home):
    """An engine that fails on one candidate's requests (its adapter cannot be loaded, say): on hf that
    candidate is recorded as failed and the others are scored; under auto it moves to hf and is scored."""
    base = resolve_base(str(tiny_model))
    cands = [make_candidate("base", base)] + [make_candidate(n, base, foreign[n]) for n in ("plain", "dora")]
    suite = load_suite("mmlu", 3)

    def failing_on(engine, name):
        real = engine.loglikelihood

        def loglikelihood(requests):
            if any(r.candidate.name == name for r in requests):
                raise RuntimeError(f"cannot load adapter {name}")
            return real(requests)

        engine.loglikelihood = loglikelihood
        return engine

    hf = failing_on(create("hf", base, cands), "plain")
    scored, _ = eval_command.run(base, cands, [suite], out_dir=tmp_path / "hf", backend=hf)
    hf.close()
    assert [(f.suite, f.candidates) for f in scored.failures] == [("mmlu", ["plain"])]
    assert "cannot load adapter plain" in scored.failures[0].reason
    assert sorted(scored.items.candidate.unique()) == ["base", "dora"] and len(scored.items) == 2 * 3

    auto = create("auto", base, cands)
    failing_on(auto._engines["vllm"], "plain")
    rerouted, _ = eval_command.run(base, cands, [suite], out_dir=tmp_path / "auto", backend=auto)
    auto.close()
    assert rerouted.failures == [] and len(rerouted.items) == 3 * 3
    backends = rerouted.items.groupby("candidate")["backend"].first().to_dict()
    assert backends == {"base": "vllm", "plain": "hf", "dora": "hf"}, backends
    assert "the vllm engine failed on it: RuntimeError: cannot load adapter plain" in auto.reasons["plain"][0]
    clean = create("hf", base, cands)
    reference, _ = eval_command.run(base, cands, [suite], out_dir=tmp_path / "ref", backend=clean)
    clean.close()
    key = ["candidate", "item_id"]
    pd.testing.assert_frame_equal(rerouted.items.sort_values(key, ignore_index=True)[[*key, "prediction", "score"]],
                                  reference.items.sort_values(key, ignore_index=True)[[*key, "prediction", "score"]])
