"""Suites compiled into one lm-eval task from the kind's own fields: mmlu, humaneval, task suites.

The kind supplies the rows of each split and the task's fields (`task_fields`) and, where prompts
use the chat template, a renderer; here they become one `ConfigurableTask`. The rows are written as
JSONL in the harness cache (keyed by content) and loaded through lm-eval's `json` dataset path, so
the same task runs offline and can be handed to lm-eval's own models for cross-checks. Grading is
lm-eval's `process_results` per item, or the kind's `grade_bulk` (HumanEval in the sandbox).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

from harness.config import Generation
from harness.runtime.files import atomic_write, dumps
from harness.runtime.hashing import sha256_json
from harness.score.suites._base import Suite, SuiteKind, item_row
from harness.store import paths

Renderer = Callable[[dict], str]  # row -> prompt text


class CompiledKind(SuiteKind):
    @abstractmethod
    def task_fields(self, suite: Suite, render: Renderer | None) -> tuple[dict[str, list[dict]], dict]:
        """The lm-eval task: ({split name: rows}, TaskConfig fields other than the dataset's).

        The split "test" holds the scored rows; other splits (few-shot examples) are optional."""

    def renderer(self, suite: Suite, tokenizer) -> Renderer | None:
        """Row -> prompt text (the chat template applied), or None when lm-eval's templates build it."""
        return None

    def grade_bulk(self, suite: Suite, docs: list[dict], samples: list[list[str]]) -> list[tuple[dict, dict]] | None:
        """(metrics, extra) per doc for kinds graded all at once (HumanEval in the sandbox); None:
        lm-eval's process_results grades each item."""
        return None

    def tasks(self, suite: Suite, tokenizer) -> list[tuple[str, object, int | None]]:
        return [(suite.name, build_task(suite, tokenizer), None)]

    def grade(self, suite: Suite, task, candidates: list, answered: list, group_task: str | None) -> list[dict]:
        by_cand_doc: dict = {}
        for cand, inst, ans in answered:
            by_cand_doc.setdefault((cand.hash, inst.doc_id), []).append((inst, ans))
        docs = {inst.doc_id: inst.doc for inst in task.instances}
        keys = [(cand, doc_id) for cand in candidates for doc_id in docs]
        texts_of = {(c.hash, d): [ans[0] for _, ans in sorted(by_cand_doc[(c.hash, d)], key=lambda p: p[0].idx)] for c, d in keys}
        choice = task.OUTPUT_TYPE == "multiple_choice"
        bulk = None if choice else self.grade_bulk(suite, [docs[d] for _, d in keys], [texts_of[(c.hash, d)] for c, d in keys])
        graded = dict(zip([(c.hash, d) for c, d in keys], bulk)) if bulk else {}
        rows = []
        for cand in candidates:
            for doc_id, doc in docs.items():
                pairs = sorted(by_cand_doc[(cand.hash, doc_id)], key=lambda p: p[0].idx)
                tokens = sum(ans[-1] for _, ans in pairs)
                if choice:
                    results = [(ans[0], ans[1]) for _, ans in pairs]
                    metrics = task.process_results(doc, results)
                    choices = task.doc_to_choice(doc)
                    pred = choices[max(range(len(results)), key=lambda i: results[i][0])]
                    ref = choices[task.doc_to_target(doc)]
                    extra = {"logprobs": [r[0] for r in results]}
                else:
                    texts = texts_of[(cand.hash, doc_id)]
                    metrics, extra = graded[(cand.hash, doc_id)] if graded else (task.process_results(doc, texts), {})
                    pred, ref = texts[0], doc["_target"]
                    extra = {**extra, **({"samples": texts} if len(texts) > 1 else {})}
                rows.append(item_row(cand, doc["id"], pred, ref, metrics, suite.headline, tokens, extra))
        return rows


def generation_fields(gen: Generation, metric_keys: list[str], process_results) -> dict:
    """lm-eval TaskConfig fields of a generation suite whose rows carry `_prompt` and `_target`."""
    return {
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
        "metric_list": [{"metric": key, "aggregation": "mean", "higher_is_better": True} for key in metric_keys],
    }


# ---------------------------------------------------------------- the lm-eval task


def write_split(rows: list[dict], name: str, key: str) -> str:
    """The rows as JSONL under HARNESS_HOME/suite_data/<key>/<name>.jsonl (written once; atomic)."""
    path = paths.suite_split_file(key, name)
    if not path.exists():
        atomic_write(path, "".join(dumps(row, indent=None) + "\n" for row in rows))
    return str(path)


def task_config(suite: Suite, render_prompt=None) -> dict:
    """The lm-eval TaskConfig dict for a suite. `render_prompt(row) -> str` applies a chat template."""
    splits, fields = suite.kind.task_fields(suite, render_prompt)
    key = f"{suite.name}-{suite.version}-{sha256_json([r['id'] for r in splits['test']] + [sha256_json(splits)])[:12]}"
    return {
        "task": f"harness_{suite.name}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {name: write_split(rows, name, key) for name, rows in splits.items()}},
        "test_split": "test",
        "metadata": {"version": 1.0},
        **fields,
    }


def build_task(suite: Suite, tokenizer=None):
    """The suite as an lm-eval task; `tokenizer` renders chat prompts for kinds that need one."""
    from lm_eval.api.task import ConfigurableTask

    render = suite.kind.renderer(suite, tokenizer) if tokenizer is not None else None
    return ConfigurableTask(config=task_config(suite, render))
