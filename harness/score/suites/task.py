"""A user's task suite (no `builtin:`): JSONL rows, a prompt (chat turns through the base model's
chat template, or a plain template), a target template and per-item metrics."""

from __future__ import annotations

from pathlib import Path

from harness.config import SuiteConfig
from harness.errors import UserError
from harness.runtime.files import read_jsonl
from harness.score.metrics import resolve
from harness.score.suites._base import (
    Renderer,
    Suite,
    SuiteKind,
    generation_fields,
    register,
)


@register("task")
class TaskSuite(SuiteKind):
    def rows(self, cfg: SuiteConfig, source: Path) -> list[dict]:
        path = (source.parent / cfg.data.path) if not cfg.data.path.is_absolute() else cfg.data.path
        rows = read_jsonl(path)
        seen = set()
        for i, row in enumerate(rows, 1):
            row.setdefault(cfg.data.id_field, f"{i}")
            row["id"] = str(row[cfg.data.id_field])
            if row["id"] in seen:
                raise UserError(f"{path}: line {i}: duplicate id {row['id']!r}")
            seen.add(row["id"])
        return rows

    def headline(self, cfg: SuiteConfig) -> str:
        return cfg.headline or cfg.metrics[0].key

    def renderer(self, suite: Suite, tokenizer) -> Renderer:
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

    def task_fields(self, suite: Suite, render: Renderer | None) -> tuple[dict[str, list[dict]], dict]:
        cfg = suite.config
        rows = [{**row, "_prompt": render(row), "_target": cfg.target.format(**row)} for row in suite.rows]
        metric_fns = {m.key: resolve(m, suite.source.parent) for m in cfg.metrics}

        def process_results(doc: dict, results: list[str]) -> dict:
            # With n > 1 samples the item's score is the mean over its samples.
            return {key: sum(fn(pred, doc["_target"]) for pred in results) / len(results) for key, fn in metric_fns.items()}

        return {"test": rows}, generation_fields(cfg.generation, list(metric_fns), process_results)
