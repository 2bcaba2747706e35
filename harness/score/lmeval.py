"""Compile a Suite into an lm-eval task: lm-eval builds the requests and computes the metrics.

The suite's kind supplies the rows of each split and the task's fields; here they become one
`ConfigurableTask`. The rows are written as JSONL in the harness cache (keyed by content) and loaded
through lm-eval's `json` dataset path, so the same task runs offline and can be handed to lm-eval's
own models for cross-checks.
"""

from __future__ import annotations

from harness.runtime.environment import harness_home
from harness.runtime.files import atomic_write, dumps
from harness.runtime.hashing import sha256_json
from harness.score.suites import Suite


def write_split(rows: list[dict], name: str, key: str) -> str:
    """The rows as JSONL under HARNESS_HOME/suite_data/<key>/<name>.jsonl (written once; atomic)."""
    path = harness_home() / "suite_data" / key / f"{name}.jsonl"
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


def build_tasks(suite: Suite, tokenizer=None) -> list[tuple[str, object, int | None]]:
    """(name, lm-eval task, documents to score: None for all) per task of the suite: lm-eval's own
    tasks for a native kind, else the one task compiled from the suite."""
    return suite.kind.native_tasks(suite) or [(suite.name, build_task(suite, tokenizer), None)]
