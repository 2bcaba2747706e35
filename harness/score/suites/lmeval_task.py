"""lm-eval's own tasks as a suite kind (`--suite lm-eval:NAME`, or `builtin: lm-eval` with `task:`).

Any task or group lm-eval's TaskManager knows: the built-in ones and task YAMLs in lm-eval's format
from `include_path` directories. lm-eval builds the requests and, through the task's own filters and
`process_results`, the per-item metrics, exactly as its evaluator does; the harness answers the
requests (every candidate together, the response cache, either backend).

An item is a document of a leaf task: its id is lm-eval's `doc_id` (`task/doc_id` in a group). A
group expands into its leaf tasks, and its mean over all their items is lm-eval's size-weighted
group aggregate. `limit` is lm-eval's: the first N documents of each task. `num_fewshot` in a suite
file overrides the task's own. Per item, every metric lm-eval computes and aggregates by mean is
kept, named as lm-eval reports it less the default filter: `acc`, `exact_match,strict-match`.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

from harness.config import SuiteConfig
from harness.errors import UserError
from harness.score.suites._base import Suite, SuiteKind, item_row, register

log = logging.getLogger(__name__)
PREFIX = "lm-eval:"


@cache
def _manager(include: tuple[str, ...]):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include) or None)


def load_tasks(cfg: SuiteConfig, source: Path | None) -> dict:
    """{leaf task name: lm-eval Task} of the suite's task or group (datasets loaded: offline, cached ones only)."""
    for path in cfg.include_path:
        if not Path(path).is_dir():
            raise UserError(f"{source or '--include-path'}: include_path {path}: no such directory")
    fewshot = cfg.num_fewshot if "num_fewshot" in cfg.model_fields_set else None
    return _load(tuple(str(Path(p).resolve()) for p in cfg.include_path), cfg.task, fewshot)


@cache
def _load(include: tuple[str, ...], name: str, fewshot: int | None) -> dict:
    """Loaded once per process: a sweep scores the same tasks every trial."""
    manager = _manager(include)
    if name not in manager.all_tasks:
        near = sorted(n for n in manager.all_tasks if name.lower() in n.lower())[:5]
        raise UserError(f"--suite {PREFIX}{name}: not a task or group lm-eval knows"
                        + (f" (did you mean {', '.join(near)}?)" if near else "")
                        + ("" if include else "; task YAMLs of your own need --include-path DIR"))
    try:
        loaded = manager.load([name])["tasks"]
    except ConnectionError as err:  # datasets' offline error: the dataset is not cached
        raise UserError(f"--suite {PREFIX}{name}: needs the hub: its dataset is not cached here and the hub cannot "
                        f"be reached ({str(err)[:160]})") from None
    except (FileNotFoundError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"--suite {PREFIX}{name}: lm-eval cannot load it: {type(err).__name__}: {str(err)[:200]}") from None
    if fewshot is not None:
        for task in loaded.values():
            task.set_config(key="num_fewshot", value=fewshot)
    return loaded


def metric_keys(task) -> list[str]:
    """The per-item metrics kept for a task: mean-aggregated ones, per filter (the default one unnamed)."""
    aggregations = task.aggregation()
    metrics = [m for m, fn in aggregations.items() if getattr(fn, "__name__", "") == "mean"]
    filters = [f.name for f in getattr(task, "_filters", [])] or ["none"]
    return [m if f == "none" else f"{m},{f}" for f in filters for m in metrics]


@register("lm-eval")
class LmEvalTask(SuiteKind):
    options = frozenset({"task", "include_path", "num_fewshot"})
    prefix = PREFIX
    divisible = False  # documents are chosen as a count of each task's first ones: scored whole

    def rows(self, cfg: SuiteConfig, source: Path) -> list[dict]:
        tasks = load_tasks(cfg, source)
        single = len(tasks) == 1
        rows = []
        for name, task in tasks.items():
            for doc_id, doc in enumerate(task.eval_docs):
                rows.append({"id": str(doc_id) if single else f"{name}/{doc_id}", "_task": name, "_doc_id": doc_id,
                             "_doc": json.dumps(doc, sort_keys=True, default=str)})
        if not rows:
            raise UserError(f"--suite {PREFIX}{cfg.task}: lm-eval's task has no documents to score")
        return rows

    def check(self, cfg: SuiteConfig, rows: list[dict], source: Path) -> None:
        for name, task in load_tasks(cfg, source).items():
            if task.OUTPUT_TYPE not in ("multiple_choice", "loglikelihood", "generate_until"):
                raise UserError(f"--suite {PREFIX}{cfg.task}: task {name} is {task.OUTPUT_TYPE}; the harness scores "
                                "multiple_choice, loglikelihood and generate_until tasks")
            if not metric_keys(task):
                raise UserError(f"--suite {PREFIX}{cfg.task}: task {name} has no metric aggregated by mean")

    def select(self, rows: list[dict], limit: int | None, cfg: SuiteConfig) -> tuple[list[dict], list[dict]]:
        """lm-eval's limit: the first `limit` documents of each task."""
        if limit is None:
            return rows, []
        taken: dict[str, int] = {}
        picked = []
        for row in rows:
            if taken.get(row["_task"], 0) < limit:
                taken[row["_task"]] = taken.get(row["_task"], 0) + 1
                picked.append(row)
        return picked, []

    def headline(self, cfg: SuiteConfig) -> str:
        return self.metric_names(cfg)[0]

    def metric_names(self, cfg: SuiteConfig) -> list[str]:
        keys = [k for task in load_tasks(cfg, None).values() for k in metric_keys(task)]
        return list(dict.fromkeys(keys))

    def tasks(self, suite: Suite, tokenizer) -> list[tuple[str, object, int]]:
        """(name, lm-eval task, how many of its first documents are scored) per leaf task."""
        counts: dict[str, int] = {}
        for row in suite.rows:
            counts[row["_task"]] = counts.get(row["_task"], 0) + 1
        tasks = load_tasks(suite.config, suite.source)
        return [(name, tasks[name], n) for name, n in counts.items()]

    def grade(self, suite: Suite, task, candidates: list, answered: list, group_task: str | None) -> list[dict]:
        """Graded as lm-eval's evaluator grades: the answers go into each instance's `resps`, the
        task's filters run, and `process_results` runs once per filter."""
        kept = set(metric_keys(task))
        by_doc: dict[int, list] = {}
        for inst in task.instances:
            by_doc.setdefault(inst.doc_id, []).append(inst)
        for insts in by_doc.values():
            insts.sort(key=lambda i: i.idx)
        rows = []
        for cand in candidates:
            mine: dict[int, list] = {}
            for c, inst, ans in answered:
                if c.hash == cand.hash:
                    mine.setdefault(id(inst), []).append(ans)
            for inst in task.instances:  # the instances are shared: each candidate's answers in turn
                inst.resps = [(a[0], a[1]) if inst.request_type == "loglikelihood" else a[0] for a in mine[id(inst)]]
                inst.filtered_resps = {}
            task.apply_filters()
            filters = list(task.instances[0].filtered_resps)
            for doc_id, insts in by_doc.items():
                doc, metrics = insts[0].doc, {}
                for key in filters:
                    for metric, value in task.process_results(doc, [i.filtered_resps[key] for i in insts]).items():
                        name = metric if key == "none" else f"{metric},{key}"
                        if name in kept:
                            metrics[name] = value
                tokens = sum(a[-1] for inst in insts for a in mine[id(inst)])
                target = task.doc_to_target(doc)
                if task.OUTPUT_TYPE == "multiple_choice":
                    choices = task.doc_to_choice(doc)
                    scores = [i.resps[0][0] for i in insts]
                    pred = choices[max(range(len(scores)), key=scores.__getitem__)]
                    ref = choices[target] if isinstance(target, int) else target
                    extra = {"logprobs": scores, "target": target}  # lm-eval's own target (a choice's index), for its sample format
                else:
                    pred, ref = insts[0].filtered_resps[filters[0]], target
                    extra = {"response": insts[0].resps[0]} if insts[0].resps[0] != pred else {}
                item = doc_id if group_task is None else f"{group_task}/{doc_id}"
                rows.append(item_row(cand, item, pred, ref, metrics, suite.headline if suite.headline in metrics else next(iter(metrics)),
                                     tokens, extra))
        return rows

    def config_for(self, ref: str, include_path: list[Path]) -> SuiteConfig:
        """`lm-eval:NAME` as a suite config."""
        name = ref.removeprefix(PREFIX)
        if not name:
            raise UserError(f"--suite {ref}: give the task, e.g. {PREFIX}arc_easy")
        return SuiteConfig(name=name.replace("/", "_"), builtin="lm-eval", task=name, include_path=include_path)
