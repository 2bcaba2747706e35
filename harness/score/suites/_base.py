"""What a suite is, and the contract every kind of suite implements.

A `Suite` is a validated config, the items it scores and a version. Its `kind` (one registered
`SuiteKind` per value of the config's `builtin`, or `task` for a user's task suite) knows everything
that differs between kinds: where the rows come from, how a subset is drawn, the headline metric,
the prompt, the lm-eval task fields, and grading in bulk. Nothing outside the kinds asks which kind
a suite is.

To add a kind: subclass `SuiteKind` (or `compiled.CompiledKind`) in a module of this package,
decorate it with `@register("name")`, import that module in `__init__.py`, and add the name to
`SuiteConfig.builtin` (config.py) if users select it by `builtin:`.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from harness.config import SuiteConfig
from harness.errors import UserError
from harness.runtime.files import dumps
from harness.runtime.registry import Registry


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

    Called in this order: `check_options` on the config (a field another kind reads is a mistake
    here), `rows` once per load (every item, with a unique "id"), `check` on them (everything that
    can be known wrong without a model: exit 2 before any heavy work), `select` to draw the scored
    subset; then per evaluation `tasks` (the lm-eval tasks that build the requests) and, once the
    backend answered them, `grade` (per-item rows).

    Two families implement `tasks` and `grade`: suites compiled into one lm-eval task from the kind's
    fields (`compiled.CompiledKind`: mmlu, humaneval, task suites) and lm-eval's own tasks
    (`lmeval_task`).
    """

    name: ClassVar[str]
    # The SuiteConfig fields this kind reads beyond the common ones (name, description, builtin,
    # limit, seed): a suite file that sets another kind's field is refused, not silently ignored.
    options: ClassVar[frozenset[str]] = frozenset()
    # A suite reference of this form (`lm-eval:arc_easy`) names a suite of this kind without a file.
    prefix: ClassVar[str | None] = None
    # Its items can be scored in parts (a sweep's early stopping scores a trial chunk by chunk).
    divisible: ClassVar[bool] = True

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
    def tasks(self, suite: Suite, tokenizer) -> list[tuple[str, object, int | None]]:
        """(name, lm-eval task, documents to score: None for all) per task of the suite."""

    @abstractmethod
    def grade(self, suite: Suite, task, candidates: list, answered: list, group_task: str | None) -> list[dict]:
        """Per-item rows (see `item_row`) of every candidate on one task, from `answered`:
        (candidate, lm-eval instance, answer) for every request the task built. `group_task` names
        the task when the suite has several (item ids are then `task/doc_id`)."""

    def config_for(self, ref: str, include_path: list[Path]) -> SuiteConfig:
        """The config of a suite named by reference (`prefix` + name), for kinds that have a prefix."""
        raise NotImplementedError(f"{self.name} suites are declared in files")

    def check_options(self, cfg: SuiteConfig, source: Path) -> None:
        """Refuse fields that belong to other kinds of suite."""
        foreign = sorted((cfg.model_fields_set & SPECIFIC) - self.options)
        if foreign:
            raise UserError(f"{source}: {foreign[0]}: not an option of {self.name} suites "
                            f"(they take: {', '.join(sorted(self.options)) or 'none of the kind-specific fields'})")

    def check(self, cfg: SuiteConfig, rows: list[dict], source: Path) -> None:
        """Raise UserError for what is wrong with the suite and its rows (default: nothing to check)."""

    def select(self, rows: list[dict], limit: int | None, cfg: SuiteConfig) -> tuple[list[dict], list[dict]]:
        """(scored rows, few-shot pool): by default a seeded sample of `limit` rows, no few-shot."""
        if limit is None or limit >= len(rows):
            return rows, []
        keep = set(random.Random(cfg.seed).sample(range(len(rows)), limit))
        return [row for i, row in enumerate(rows) if i in keep], []


# Fields of SuiteConfig that only some kinds read (the rest are common to every suite).
SPECIFIC = frozenset(SuiteConfig.model_fields) - {"name", "description", "builtin", "limit", "seed"}


def item_row(cand, item_id, pred, ref, metrics: dict, headline: str, tokens: int, extra: dict) -> dict:
    """One item's row as `grade` returns it (evaluate adds the suite's and the backend's columns)."""
    return {"candidate": cand, "item_id": str(item_id), "prediction": str(pred), "reference": str(ref),
            "score": float(metrics[headline]), "metrics": dumps({k: float(v) for k, v in metrics.items()}, indent=None),
            "tokens": int(tokens), "extra": dumps(extra, indent=None)}


KINDS: Registry[SuiteKind] = Registry("suite kind")


def register(name: str):
    """Class decorator: make a SuiteKind available under `name` (one stateless instance)."""

    def add(cls: type[SuiteKind]) -> type[SuiteKind]:
        cls.name = name
        KINDS.add(name, cls())
        return cls

    return add


def kind_of(cfg: SuiteConfig) -> SuiteKind:
    return KINDS.get(cfg.builtin or "task")
