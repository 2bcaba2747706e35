"""Compile a Suite into an lm-eval task: lm-eval builds the requests and computes the metrics.

The suite's items are written to JSONL in the harness cache and loaded through lm-eval's `json`
dataset path, so the same task object runs offline and can be handed to lm-eval's own models for
cross-checks. MMLU mirrors lm-eval's `mmlu` (letter) and `mmlu_continuation` (cloze) configs.
"""

from __future__ import annotations

import json

from harness.environment import harness_home
from harness.hashing import sha256_json
from harness.metrics import resolve
from harness.suites import Suite

MMLU_LETTER = "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"
MMLU_CLOZE = "Question: {{question.strip()}}\nAnswer:"


def _write_split(rows: list[dict], name: str, key: str) -> str:
    folder = harness_home() / "suite_data" / key
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
        tmp.replace(path)
    return str(path)


def task_config(suite: Suite, render_prompt=None) -> dict:
    """The lm-eval TaskConfig dict for a suite. `render_prompt(row) -> str` applies a chat template."""
    cfg = suite.config
    rows = suite.rows
    if cfg.builtin is None:
        rows = [{**row, "_prompt": render_prompt(row), "_target": cfg.target.format(**row)} for row in rows]
    elif cfg.builtin == "humaneval":
        rows = [{**row, "_prompt": render_prompt(row), "_target": row["canonical_solution"]} for row in rows]
    key = f"{suite.name}-{suite.version}-{sha256_json([r['id'] for r in rows] + [sha256_json(rows)])[:12]}"
    files = {"test": _write_split(rows, "test", key)}
    base = {
        "task": f"harness_{suite.name}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": files},
        "test_split": "test",
        "metadata": {"version": 1.0},
    }
    if cfg.builtin == "mmlu":
        if suite.fewshot:
            files["dev"] = _write_split(suite.fewshot, "dev", key)
        letter = cfg.format == "letter"
        return {
            **base,
            "output_type": "multiple_choice",
            "fewshot_split": "dev" if suite.fewshot else None,
            "fewshot_config": {"sampler": "first_n"},
            "num_fewshot": cfg.num_fewshot,
            "doc_to_text": MMLU_LETTER if letter else MMLU_CLOZE,
            "doc_to_choice": list("ABCD") if letter else "{{choices}}",
            "doc_to_target": "answer" if letter else "{{answer}}",
            "description": (
                "The following are multiple choice questions (with answers) about {{subject}}.\n\n"
                if letter else "The following are questions (with answers) about {{subject}}.\n\n"
            ),
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]
            + ([] if letter else [{"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]),
        }
    gen = cfg.generation
    if cfg.builtin == "humaneval":
        from harness.humaneval import STOP

        stop = list(gen.stop) or (STOP if cfg.mode == "completion" else [])
        # Graded in bulk, in the sandbox, by batch_metrics(); lm-eval only builds the requests.
        metric_fns = {"pass@1": None}
        gen = gen.model_copy(update={"stop": stop})
    else:
        metric_fns = {m.key: resolve(m, suite.source.parent) for m in cfg.metrics}

    def process_results(doc: dict, results: list[str]) -> dict:
        # With n > 1 samples the item's score is the mean over its samples.
        return {key: sum(fn(pred, doc["_target"]) for pred in results) / len(results) for key, fn in metric_fns.items()}

    return {
        **base,
        "output_type": "generate_until",
        "doc_to_text": "{{_prompt}}",
        "doc_to_target": "{{_target}}",
        "target_delimiter": "",
        "num_fewshot": 0,
        "repeats": gen.n,
        "generation_kwargs": {
            "until": list(gen.stop),
            "max_gen_toks": gen.max_tokens,
            "do_sample": gen.temperature > 0,
            "temperature": gen.temperature,
        },
        "process_results": process_results,
        "metric_list": [{"metric": key, "aggregation": "mean", "higher_is_better": True} for key in metric_fns],
    }


def build_task(suite: Suite, render_prompt=None):
    from lm_eval.api.task import ConfigurableTask

    return ConfigurableTask(config=task_config(suite, render_prompt))


def batch_metrics(suite: Suite, docs: list[dict], samples: list[list[str]]) -> list[tuple[dict, dict]] | None:
    """Suites graded in bulk (HumanEval: every program in parallel in the sandbox) return
    (metrics, extra) per doc; others return None and lm-eval's process_results scores them."""
    if suite.config.builtin != "humaneval":
        return None
    from harness import humaneval

    flat = [{"task_id": d["task_id"], "completion": t} for d, texts in zip(docs, samples) for t in texts]
    graded = iter(humaneval.grade(flat, suite.config.mode or "completion"))
    out = []
    for texts in samples:
        mine = [next(graded) for _ in texts]
        passed = sum(g["passed"] for g in mine)
        metrics = {f"pass@{k}": humaneval.pass_at_k(len(mine), passed, k) for k in (1, 10) if len(mine) >= k}
        out.append((metrics, {"results": [g["result"] for g in mine], "sandbox": mine[0]["sandbox"]}))
    return out


def chat_renderer(suite: Suite, tokenizer):
    """Row -> prompt text: the base model's chat template over the suite's messages, or the plain template."""
    if suite.config.builtin == "humaneval":
        from harness.humaneval import CHAT_INSTRUCTION

        if suite.config.mode == "chat" and getattr(tokenizer, "chat_template", None):
            return lambda row: tokenizer.apply_chat_template(
                [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=row["prompt"])}], tokenize=False, add_generation_prompt=True)
        return lambda row: row["prompt"]
    prompt = suite.config.prompt
    if prompt.template is not None:
        return lambda row: prompt.template.format(**row)
    if getattr(tokenizer, "chat_template", None) is None:
        # No chat template: a plain rendering that still separates the turns.
        return lambda row: "\n\n".join(filter(None, [prompt.system, prompt.user.format(**row)])) + "\n\n"

    def render(row: dict) -> str:
        messages = ([{"role": "system", "content": prompt.system}] if prompt.system else []) + [
            {"role": "user", "content": prompt.user.format(**row)}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    return render
