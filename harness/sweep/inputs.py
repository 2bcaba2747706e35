"""Everything a sweep needs that can be checked without loading a model: the base, every suite with
its data, templates and metrics, the metrics the objective names, and enough training rows for the
largest n_samples. `harness validate` and every worker run it first (exit 2 on a problem)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from harness.config import SweepConfig
from harness.errors import UserError
from harness.models import BaseModel, resolve_base
from harness.score.suites import Suite, load_suite
from harness.train.data import training_split
from harness.train.trainers import check_method_available


def check_inputs(cfg: SweepConfig, source: Path, prepare_base: bool = True) -> tuple[BaseModel, dict[str, Suite]]:
    """The base model and {the sweep file's suite reference: Suite}; a UserError naming the file and field otherwise."""
    with _named_in(source, "base", "--base"):
        base = resolve_base(cfg.base, prepare=prepare_base)
    suites = {}
    for i, s in enumerate(cfg.suites):
        with _named_in(source, f"suites[{i}].suite", "--suite"):
            suites[s.suite] = load_suite(s.suite, s.limit, scope="sweep", include_path=s.include_path)
    named = [(f"suites[{i}].metric", s.suite, s.metric) for i, s in enumerate(cfg.suites) if s.metric]
    named += [(f"objectives[{i}]", o.suite, o.metric or None) for i, o in enumerate(cfg.objectives)]
    by_name = {**{s.name: s for s in suites.values()}, **suites}
    for field, ref, metric in named:
        suite = by_name.get(ref)
        if suite is None:
            raise UserError(f"{source}: {field}: suite {ref!r} is not one of the sweep's suites ({', '.join(suites)})")
        if metric is not None and metric not in suite.metric_names:
            raise UserError(f"{source}: {field}: {ref} has no metric {metric!r} (it has: {', '.join(suite.metric_names)})")
    if cfg.backend == "vllm" and cfg.dora_trials():
        raise UserError(f"{source}: backend: vllm cannot score DoRA adapters (use_dora); backend auto (or --backend auto) scores "
                        "those trials on hf and the rest on vllm")
    methods = cfg.methods()
    if "sft" in methods:
        training_split(cfg.train.data, cfg.max_samples())
    if pairs := [m for m in methods if m != "sft"]:
        # dpo/orpo trials read preference pairs: train.preference_data, else train.data itself
        training_split(cfg.train.preference_data or cfg.train.data, cfg.max_samples(), preference=True)
        for method in pairs:
            check_method_available(method)
    return base, suites


@contextmanager
def _named_in(source: Path, field: str, flag: str):
    """The model and suite checks speak of the CLI flag; from a sweep file, name the file and field instead."""
    try:
        yield
    except UserError as err:
        raise UserError(*(f"{source}: {field}: {line.removeprefix(flag + ' ')}" if line.startswith(flag + " ") else line
                          for line in err.lines)) from None
