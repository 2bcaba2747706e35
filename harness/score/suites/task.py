"""A user's task suite (no `builtin:`): JSONL rows, a prompt (chat turns through the base model's
chat template, or a plain template), a target template and per-item metrics.

Templates are Python `str.format` templates over a row: `{field}` is the row's field, `{field[0]}`
an element; literal braces are written `{{` and `}}` (a JSON example in a prompt needs them).
"""

from __future__ import annotations

from pathlib import Path

from harness.config import SuiteConfig
from harness.errors import UserError
from harness.runtime.files import read_jsonl
from harness.score.metrics import check_returns_a_number, resolve
from harness.score.suites._base import Suite, register
from harness.score.suites.compiled import CompiledKind, Renderer, generation_fields


@register("task")
class TaskSuite(CompiledKind):
    options = frozenset({"data", "prompt", "target", "generation", "metrics", "headline"})

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

    def check(self, cfg: SuiteConfig, rows: list[dict], source: Path) -> None:
        """Every template renders on every row; every metric imports, takes (prediction, reference)
        and returns a number on a sample."""
        data = (source.parent / cfg.data.path) if not cfg.data.path.is_absolute() else cfg.data.path
        templates = {"prompt.system": cfg.prompt.system, "prompt.user": cfg.prompt.user,
                     "prompt.template": cfg.prompt.template, "target": cfg.target}
        for field, template in templates.items():
            if template is not None:
                _check_template(source, field, template, rows, data)
        sample = cfg.target.format(**rows[0])
        for spec in cfg.metrics:
            check_returns_a_number(spec, resolve(spec, source.parent), sample, sample)

    def headline(self, cfg: SuiteConfig) -> str:
        return cfg.headline or cfg.metrics[0].key

    def metric_names(self, cfg: SuiteConfig) -> list[str]:
        return [m.key for m in cfg.metrics]

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


def _check_template(source: Path, field: str, template: str, rows: list[dict], data: Path) -> None:
    for i, row in enumerate(rows, 1):
        try:
            template.format(**row)
        except KeyError as err:
            fields = ", ".join(sorted(k for k in row if k != "id"))
            raise UserError(f"{source}: {field}: placeholder {{{err.args[0]}}} is not a field of {data} row {i} "
                            f"(its fields: {fields}; write a literal brace as {{{{ or }}}})") from None
        except (IndexError, AttributeError, TypeError) as err:
            raise UserError(f"{source}: {field}: cannot fill the template from {data} row {i} ({err})") from None
        except ValueError as err:  # a syntax error of the template itself: the same for every row
            raise UserError(f"{source}: {field}: not a valid template ({err}); write a literal brace as {{{{ or }}}}") from None
