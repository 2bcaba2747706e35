"""What a suite is, and the contract every kind of suite implements.

A `Suite` is a validated config, the items it scores and a version. Its `kind` (one registered
`SuiteKind` per value of the config's `builtin`, or `task` for a user's task suite) knows everything
that differs between kinds: where the rows come from, how a subset is drawn, the headline metric,
the prompt, the lm-eval task fields, and grading in bulk. Nothing outside the kinds asks which kind
a suite is.

To add a kind: subclass `SuiteKind` in a module of this package, decorate it with
`@register("name")`, import that module in `__init__.py`, and add the name to
`SuiteConfig.builtin` (config.py) if users select it by `builtin:`.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from harness.config import Generation, SuiteConfig

Renderer = Callable[[dict], str]  # row -> prompt text


@dataclass
class Suite:
    config: SuiteConfig
    source: Path  # the YAML file
    rows: list[dict]  # the scored items, each with a unique "id"
    kind: SuiteKind
    fewshot: list[dict] = field(default_factory=list)  # k-shot pool, never scored
    version: str = ""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def headline(self) -> str:
        return self.kind.headline(self.config)

    @property
    def metric_names(self) -> list[str]:
        return self.kind.metric_names(self.config)


class SuiteKind(ABC):
    """One kind of suite. Instances are stateless; the registry holds one of each.

    Called in this order: `rows` once per load (every item, with a unique "id"), `check` on them
    (everything that can be known wrong without a model: exit 2 before any heavy work), `select` to
    draw the scored subset, then per evaluation `renderer`, `task_fields` and, for generation
    suites, `grade_bulk`.
    """

    name: ClassVar[str]
    native: ClassVar[bool] = False  # lm-eval's own tasks (see native_tasks), not compiled from task_fields

    @abstractmethod
    def rows(self, cfg: SuiteConfig, source: Path) -> list[dict]:
        """Every item of the suite, each with a unique string "id". Raises UserError on bad data."""

    @abstractmethod
    def headline(self, cfg: SuiteConfig) -> str:
        """The metric that stands for the suite (leaderboards, objectives, gates by default)."""

    @abstractmethod
    def metric_names(self, cfg: SuiteConfig) -> list[str]:
        """Every metric an item of this suite gets (what objectives and gate rules may name)."""

    @abstractmethod
    def task_fields(self, suite: Suite, render: Renderer | None) -> tuple[dict[str, list[dict]], dict]:
        """The lm-eval task: ({split name: rows}, TaskConfig fields other than the dataset's).

        The split "test" holds the scored rows; other splits (few-shot examples) are optional."""

    def check(self, cfg: SuiteConfig, rows: list[dict], source: Path) -> None:
        """Raise UserError for what is wrong with the suite and its rows (default: nothing to check)."""

    def select(self, rows: list[dict], limit: int | None, cfg: SuiteConfig) -> tuple[list[dict], list[dict]]:
        """(scored rows, few-shot pool): by default a seeded sample of `limit` rows, no few-shot."""
        if limit is None or limit >= len(rows):
            return rows, []
        keep = set(random.Random(cfg.seed).sample(range(len(rows)), limit))
        return [row for i, row in enumerate(rows) if i in keep], []

    def renderer(self, suite: Suite, tokenizer) -> Renderer | None:
        """Row -> prompt text (the chat template applied), or None when lm-eval's templates build it."""
        return None

    def native_tasks(self, suite: Suite) -> list[tuple[str, object, int]] | None:
        """For `native` kinds: (name, lm-eval task, documents scored) per task; None: one task compiled from task_fields."""
        return None

    def grade_bulk(self, suite: Suite, docs: list[dict], samples: list[list[str]]) -> list[tuple[dict, dict]] | None:
        """(metrics, extra) per doc for kinds graded all at once (HumanEval in the sandbox); None:
        lm-eval's process_results grades each item."""
        return None


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


KINDS: dict[str, SuiteKind] = {}


def register(name: str):
    """Class decorator: make a SuiteKind available under `name`."""

    def add(cls: type[SuiteKind]) -> type[SuiteKind]:
        cls.name = name
        KINDS[name] = cls()
        return cls

    return add


def kind_of(cfg: SuiteConfig) -> SuiteKind:
    return KINDS[cfg.builtin or "task"]
