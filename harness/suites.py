"""Suites: a config, the items it scores, and a version hash of both.

A suite reference is a path to a YAML file or the name of a shipped suite (`mmlu`, `humaneval`, ...,
from the repo's suites/ folder). `limit` draws a fixed subset: topic-stratified for MMLU, a seeded
sample for task suites; the version hashes the spec and the full data, so the same item keeps its
identity whatever the limit.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness import assets, config
from harness.config import SuiteConfig
from harness.data import read_jsonl
from harness.environment import is_offline
from harness.errors import UserError
from harness.hashing import sha256_json

SHIPPED = Path(__file__).resolve().parents[1] / "suites"
LETTERS = ("A", "B", "C", "D")


@dataclass
class Suite:
    config: SuiteConfig
    source: Path  # the YAML file
    rows: list[dict]  # the scored items, each with a unique "id"
    fewshot: list[dict] = field(default_factory=list)  # k-shot pool, never scored
    version: str = ""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def headline(self) -> str:
        if self.config.builtin == "mmlu":
            return "acc"
        if self.config.builtin == "humaneval":
            return "pass@1"
        return self.config.headline or self.config.metrics[0].key


def find_suite_file(ref: str) -> Path:
    path = Path(ref)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"--suite {ref}: no such file")
        return path
    for candidate in (Path("suites") / f"{ref}.yaml", SHIPPED / f"{ref}.yaml", Path("suites") / ref / "suite.yaml", SHIPPED / ref / "suite.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for p in SHIPPED.glob("*.yaml")} | {p.parent.name for p in SHIPPED.glob("*/suite.yaml")})
    raise UserError(f"--suite {ref}: unknown suite (not a YAML file, not one of {', '.join(known)})")


def load_suite(ref: str, limit: int | None = None) -> Suite:
    source = find_suite_file(ref)
    cfg = config.load(source, "suite")
    if cfg.builtin == "mmlu":
        all_rows = mmlu_rows()
    elif cfg.builtin == "humaneval":
        from harness.humaneval import humaneval_rows

        all_rows = humaneval_rows()
    else:
        all_rows = task_rows(cfg, source)
    version = sha256_json({"spec": cfg.model_dump(mode="json", exclude={"limit", "description"}), "data": sha256_json(all_rows)})[:16]
    if cfg.builtin == "mmlu":
        rows, fewshot = stratified(all_rows, limit, cfg.num_fewshot, cfg.seed)
    else:
        rows, fewshot = sampled(all_rows, limit, cfg.seed), []
    return Suite(cfg, source, rows, fewshot, version)


def task_rows(cfg: SuiteConfig, source: Path) -> list[dict]:
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


def mmlu_rows() -> list[dict]:
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


def sampled(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    if limit is None or limit >= len(rows):
        return rows
    keep = set(random.Random(seed).sample(range(len(rows)), limit))
    return [row for i, row in enumerate(rows) if i in keep]
