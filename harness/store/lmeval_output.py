"""Results out in lm-eval's format: what `lm_eval --output_path DIR --log_samples` writes, per candidate.

    DIR/<candidate>/results_<date>.json          results, n-samples, versions, configs, config.model_args ...
    DIR/<candidate>/samples_<task>_<date>.jsonl  one line per document and filter: doc_id, doc, target,
                                                 resps, filtered_resps, filter, metrics and their values

so the tools that read lm-eval outputs (lm-eval's own file helpers, its Hub card, `datasets`' json
loader, dashboards built on them, `harness report --items DIR`) read ours. The names follow lm-eval:
a metric `m` of filter `f` is `m,f` in results and `m` with `"filter": f` in a sample line; a harness
metric that names no filter is lm-eval's `none`. A suite is a task; a suite of several lm-eval tasks
(a group) writes one samples file per leaf task and its group in results. The candidate is the
model: its folder is the candidate's name (sanitized as lm-eval sanitizes model names) and
`config.model_args` is `pretrained=<base>` plus `peft=<adapter>` for an adapter, as lm-eval's hf
model takes it.

What lm-eval has and the harness does not keep: the request (`arguments`: written empty, and
`prompt_hash` is the hash of an empty prompt) and, for a multiple-choice item, whether each choice was
the greedy continuation (written "None"). `doc_hash` is taken over the document as the harness keeps
it (an lm-eval task's keys sorted), so it matches across harness outputs, not with lm-eval's own.
What the harness adds under a `harness` key: each item's id, backend and dtype in a sample; each
metric's 95% CI and n in results.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

from harness.runtime.files import atomic_write, dumps
from harness.stats.summary import summarize

FILE_TIME = "%Y-%m-%dT%H-%M-%S.%f"  # lm-eval's date_id: isoformat with ':' made '-'


def sanitize_model_name(name: str) -> str:
    """lm-eval's `utils.sanitize_model_name`: the folder a model's files go in."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()  # lm-eval's utils.hash_string


def split_metric(name: str) -> tuple[str, str]:
    """'exact_match,get-number' -> ('exact_match', 'get-number'); a harness metric without a filter -> (name, 'none')."""
    metric, _, filt = name.partition(",")
    return metric, filt or "none"


def write(out: Path, items: pd.DataFrame, candidates: list, suites: list, base_path: str, dtype: str,
          when: datetime | None = None) -> list[Path]:
    """Write every candidate's results and samples under `out`; returns the files written.

    `candidates`: ScoredCandidate (name, adapter, backend); `suites`: the scored Suite objects (their
    rows give each sample's doc and a group's leaf tasks)."""
    when = when or datetime.now()
    stamp = when.strftime(FILE_TIME)
    by_suite = {s.name: s for s in suites}
    written = []
    for cand in candidates:
        mine = items[items.candidate == cand.name]
        if mine.empty:
            continue
        leaves = _as_leaf_tasks(mine, by_suite)
        folder = Path(out) / sanitize_model_name(cand.name)
        folder.mkdir(parents=True, exist_ok=True)
        task_hashes = {}
        for task, rows in leaves.groupby("suite", sort=False):
            suite = by_suite.get(rows.harness_suite.iloc[0])
            lines = _samples(rows, {r["id"]: r for r in suite.rows} if suite is not None else {})
            path = folder / f"samples_{task}_{stamp}.jsonl"
            atomic_write(path, "".join(dumps(line, indent=None) + "\n" for line in lines))
            written.append(path)
            task_hashes[task] = _hash("".join(x["doc_hash"] + x["prompt_hash"] + x["target_hash"] for x in lines))
        doc = _results(cand, mine, leaves, base_path, dtype, when)
        doc["task_hashes"] = task_hashes
        path = folder / f"results_{stamp}.json"
        atomic_write(path, dumps(doc) + "\n")
        written.append(path)
    return written


def _as_leaf_tasks(items: pd.DataFrame, suites: dict) -> pd.DataFrame:
    """The items with `suite` the lm-eval task and `item_id` its doc id: a group suite's items
    (`task/doc_id`) split into their leaf tasks; `harness_suite` keeps the suite's name."""
    grouped = {name for name, s in suites.items() if len({r.get("_task") for r in s.rows}) > 1}
    split = items.item_id.str.partition("/")
    in_group = items.suite.isin(grouped) & (split[1] == "/")
    return items.assign(harness_suite=items.suite, harness_item=items.item_id,
                        suite=items.suite.where(~in_group, split[0]), item_id=items.item_id.where(~in_group, split[2]))


def _doc(row: dict | None) -> dict:
    if row is None:
        return {}
    if "_doc" in row:  # an lm-eval task's document, kept as JSON text
        return json.loads(row["_doc"])
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _samples(rows: pd.DataFrame, docs: dict[str, dict]) -> list[dict]:
    """A task's sample lines in item order, one per (document, filter)."""
    out = []
    for row in rows.itertuples(index=False):
        doc = _doc(docs.get(row.harness_item))
        extra = json.loads(row.extra or "{}")
        metrics: dict[str, dict[str, float]] = {}
        for name, value in json.loads(row.metrics).items():
            metric, filt = split_metric(name)
            metrics.setdefault(filt, {})[metric] = value
        if "logprobs" in extra:  # multiple choice: one log-likelihood request per choice
            resps = [[[str(lp), "None"]] for lp in extra["logprobs"]]
            filtered = [[str(lp), "None"] for lp in extra["logprobs"]]
        else:
            resps, filtered = [[str(extra.get("response", row.prediction))]], [row.prediction]
        target = str(extra.get("target", row.reference))  # lm-eval's target where the harness shows a choice's text instead
        for filt, values in metrics.items():
            out.append({"doc_id": int(row.item_id) if row.item_id.isdigit() else row.item_id, "doc": doc, "target": target,
                        "arguments": {}, "resps": resps, "filtered_resps": filtered, "filter": filt, "metrics": list(values),
                        "doc_hash": _hash(json.dumps(doc, indent=2, default=str, ensure_ascii=False)),
                        "prompt_hash": _hash(""), "target_hash": _hash(target), **values,
                        "harness": {"item_id": row.harness_item, "suite": row.harness_suite, "backend": row.backend, "dtype": row.dtype}})
    return out


def _results(cand, items: pd.DataFrame, leaves: pd.DataFrame, base_path: str, dtype: str, when: datetime) -> dict:
    """The results_<date>.json of one candidate: lm-eval's keys, with the harness's CIs under `harness`."""
    results, ci, n_samples, versions, configs, higher, group_subtasks = {}, {}, {}, {}, {}, {}, {}
    by_task, by_suite = summarize(leaves), summarize(items)
    for task, rows in leaves.groupby("suite", sort=False):
        results[task], ci[task] = _entries(by_task[by_task.suite == task], task, len(rows))
        n_samples[task] = {"original": len(rows), "effective": len(rows)}
        versions[task] = str(rows.suite_version.iloc[0])
        higher[task] = {split_metric(m)[0]: True for m in json.loads(rows.metrics.iloc[0])}
        configs[task] = {"task": task, "output_type": "multiple_choice" if '"logprobs"' in rows.extra.iloc[0] else "generate_until",
                         "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in higher[task]],
                         "metadata": {"version": versions[task], "harness_suite": rows.harness_suite.iloc[0]}}
        group_subtasks.setdefault(task, [])
    for suite, rows in leaves.groupby("harness_suite", sort=False):
        tasks = list(dict.fromkeys(rows.suite))
        if tasks != [suite]:  # a group: its own entry over all its items, its leaves listed
            results[suite], ci[suite] = _entries(by_suite[by_suite.suite == suite], suite, len(rows))
            group_subtasks[suite] = tasks
            for task in tasks:
                group_subtasks.pop(task, None)
    model_args = f"pretrained={base_path}" + (f",peft={cand.adapter}" if cand.adapter else "") + f",dtype={dtype}"
    backend = cand.backend or str(items.backend.iloc[0])
    return {
        "results": results,
        "groups": {g: results[g] for g, subs in group_subtasks.items() if subs},
        "group_subtasks": group_subtasks,
        "configs": configs,
        "versions": versions,
        "n-shot": {task: 0 for task in versions},
        "higher_is_better": higher,
        "n-samples": n_samples,
        "config": {"model": f"harness-{backend}", "model_args": model_args, "batch_size": None, "device": "cpu",
                   "use_cache": None, "limit": None, "bootstrap_iters": 0, "gen_kwargs": None},
        "git_hash": None,
        "date": when.timestamp(),
        "model_source": f"harness-{backend}",
        "model_name": cand.name,
        "model_name_sanitized": sanitize_model_name(cand.name),
        "harness": {"ci": ci, "backend": backend, "dtype": dtype},
    }


def _entries(summary: pd.DataFrame, name: str, n: int) -> tuple[dict, dict]:
    """lm-eval's results entry of a task (`m,f` and `m_stderr,f`) and the harness's CI of each metric."""
    entry, ci = {"name": name, "alias": name, "sample_len": n}, {}
    for row in summary.itertuples(index=False):
        metric, filt = split_metric(row.metric)
        entry[f"{metric},{filt}"] = row.value
        entry[f"{metric}_stderr,{filt}"] = row.stderr
        ci[f"{metric},{filt}"] = {"ci_low": row.ci_low, "ci_high": row.ci_high, "n": int(row.n)}
    return entry, ci
