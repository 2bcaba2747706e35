"""`harness eval`: every candidate on every suite, one loaded base model, results per item.

lm-eval builds each suite's requests once; the requests of all candidates go to the backend
together (after the cache took what it already knows), and lm-eval's process_results turns each
candidate's answers into per-item metrics. items.parquet is written after every suite, so a later
failure loses nothing already computed (the store owns both files and their formats).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness import store
from harness.runtime.files import dumps
from harness.runtime.processes import raise_if_interrupted
from harness.score.backends import (
    Backend,
    Candidate,
    GenerateRequest,
    LoglikelihoodRequest,
)
from harness.score.cache import ResponseCache
from harness.score.lmeval import build_tasks
from harness.score.suites import Suite

log = logging.getLogger(__name__)
COMMIT_REQUESTS = 32  # the cache commits at least every this many answers...
COMMIT_SECONDS = 10.0  # ...or this much backend time, whichever is more (see answer())
MAX_CHUNK = 512  # requests per backend call at most


@dataclass
class SuiteFailure:
    suite: str
    reason: str
    candidates: list[str] = field(default_factory=list)


def _requests_for(task, candidates: list[Candidate]):
    """One backend request per (candidate, lm-eval instance, repeat)."""
    out = []
    for cand in candidates:
        for inst in task.instances:
            for rep in range(inst.repeats):
                if inst.request_type == "loglikelihood":
                    context, continuation = inst.args
                    out.append((cand, inst, LoglikelihoodRequest(cand, context, continuation)))
                elif inst.request_type == "generate_until":
                    context, gen = inst.args
                    out.append((cand, inst, GenerateRequest(
                        cand, context, tuple(gen.get("until", [])), int(gen.get("max_gen_toks", 256)),
                        float(gen.get("temperature", 0.0)) if gen.get("do_sample") else 0.0, rep,
                    )))
                else:
                    raise NotImplementedError(f"request type {inst.request_type}")
    return out


def answer(backend: Backend, cache: ResponseCache, requests: list, progress=None) -> list:
    """Answers in request order: cached ones from the cache, the rest from the backend in chunks.

    Each chunk's answers are committed to the cache as soon as they exist, so a killed evaluation
    loses at most COMMIT_REQUESTS answers or COMMIT_SECONDS of work, whichever is more: chunks start
    at COMMIT_REQUESTS and double while a backend call stays under a quarter of COMMIT_SECONDS (big
    batches keep the engines efficient), halving again when one takes longer than COMMIT_SECONDS."""
    keys = [ResponseCache.key(backend.name, backend.dtype, r) for r in requests]
    known = cache.get_many(keys)
    missing = [i for i, k in enumerate(keys) if k not in known]
    if progress:
        progress(len(requests) - len(missing), len(requests))
    start, size = 0, COMMIT_REQUESTS
    while start < len(missing):
        raise_if_interrupted()
        chunk = missing[start:start + size]
        batch = [requests[i] for i in chunk]
        t0 = time.perf_counter()
        ll = [j for j, r in enumerate(batch) if isinstance(r, LoglikelihoodRequest)]
        gen = [j for j, r in enumerate(batch) if isinstance(r, GenerateRequest)]
        fresh: dict[str, object] = {}
        for idxs, fn in ((ll, backend.loglikelihood), (gen, backend.generate)):
            for j, value in zip(idxs, fn([batch[j] for j in idxs]), strict=True):
                fresh[keys[chunk[j]]] = list(value)
        cache.put_many(fresh)
        known.update(fresh)
        start += len(chunk)
        elapsed = time.perf_counter() - t0
        if elapsed < COMMIT_SECONDS / 4:
            size = min(2 * size, MAX_CHUNK)
        elif elapsed > COMMIT_SECONDS:
            size = max(COMMIT_REQUESTS, size // 2)
        if progress:
            progress(len(requests) - len(missing) + start, len(requests))
    return [known[k] for k in keys]


def score_suite(suite: Suite, candidates: list[Candidate], backend: Backend, cache: ResponseCache, tokenizer, progress=None) -> pd.DataFrame:
    """Every candidate on every item of the suite: the requests of all its tasks answered together, then graded."""
    tasks = build_tasks(suite, tokenizer)
    requests = []
    for name, task, limit in tasks:
        task.build_all_requests(limit=limit, cache_requests=False)
        requests += [(name, cand, inst, req) for cand, inst, req in _requests_for(task, candidates)]
    t0 = time.perf_counter()
    answers = answer(backend, cache, [r for *_, r in requests], progress)
    elapsed = time.perf_counter() - t0
    rows = []
    for name, task, _ in tasks:
        answered = [(cand, inst, ans) for (n, cand, inst, _), ans in zip(requests, answers, strict=True) if n == name]
        grade = _native_rows if suite.kind.native else _compiled_rows
        rows += grade(suite, task, candidates, answered, None if len(tasks) == 1 else name)
    frame = pd.DataFrame([{**row, "candidate_hash": row["candidate"].hash, "candidate": row["candidate"].name, "suite": suite.name,
                           "suite_version": suite.version, "backend": backend.name, "dtype": backend.dtype} for row in rows],
                         columns=store.ITEM_COLUMNS)
    frame.attrs["seconds"] = elapsed
    return frame


def _item(cand: Candidate, item_id, pred, ref, metrics: dict, headline: str, tokens: int, extra: dict) -> dict:
    return {"candidate": cand, "item_id": str(item_id), "prediction": str(pred), "reference": str(ref),
            "score": float(metrics[headline]), "metrics": dumps({k: float(v) for k, v in metrics.items()}, indent=None),
            "tokens": int(tokens), "extra": dumps(extra, indent=None)}


def _compiled_rows(suite: Suite, task, candidates: list[Candidate], answered: list, _group_task) -> list[dict]:
    """Items of a task compiled from the suite: lm-eval's process_results, or the kind's bulk grading."""
    by_cand_doc: dict = {}
    for cand, inst, ans in answered:
        by_cand_doc.setdefault((cand.hash, inst.doc_id), []).append((inst, ans))
    docs = {inst.doc_id: inst.doc for inst in task.instances}
    keys = [(cand, doc_id) for cand in candidates for doc_id in docs]
    texts_of = {(c.hash, d): [ans[0] for _, ans in sorted(by_cand_doc[(c.hash, d)], key=lambda p: p[0].idx)] for c, d in keys}
    bulk = None if task.OUTPUT_TYPE == "multiple_choice" else suite.kind.grade_bulk(suite, [docs[d] for _, d in keys], [texts_of[(c.hash, d)] for c, d in keys])
    graded = dict(zip([(c.hash, d) for c, d in keys], bulk)) if bulk else {}
    rows = []
    for cand in candidates:
        for doc_id, doc in docs.items():
            pairs = sorted(by_cand_doc[(cand.hash, doc_id)], key=lambda p: p[0].idx)
            tokens = sum(ans[-1] for _, ans in pairs)
            if task.OUTPUT_TYPE == "multiple_choice":
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
            rows.append(_item(cand, doc["id"], pred, ref, metrics, suite.headline, tokens, extra))
    return rows


def _native_rows(suite: Suite, task, candidates: list[Candidate], answered: list, group_task: str | None) -> list[dict]:
    """Items of one of lm-eval's own tasks, graded as lm-eval's evaluator grades them: the answers go
    into each instance's `resps`, the task's filters run, and `process_results` runs once per filter."""
    from harness.score.suites.lmeval_task import metric_keys

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
                extra = {"logprobs": scores}
            else:
                pred, ref = insts[0].filtered_resps[filters[0]], target
                extra = {"response": insts[0].resps[0]} if insts[0].resps[0] != pred else {}
            item = doc_id if group_task is None else f"{group_task}/{doc_id}"
            rows.append(_item(cand, item, pred, ref, metrics, suite.headline if suite.headline in metrics else next(iter(metrics)),
                              tokens, extra))
    return rows


def evaluate(base, candidates: list[Candidate], suites: list[Suite], backend_kind: str = "hf", dtype: str = "float32",
             out_dir: Path = store.EVAL_DIR, use_cache: bool = True, backend: Backend | None = None, live=None):
    """Score every candidate on every suite; write items.parquet and scores.json into out_dir.

    `live`: a running rich Progress to add the suite bars to (the sweep's); else one of our own.
    """
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.errors import UserError
    from harness.models import load_tokenizer
    from harness.score.backends import create
    from harness.stats import summarize

    store.prepare_output_dir(out_dir)  # a bad --out fails before any scoring, not after
    own_backend = backend is None
    backend = backend or create(backend_kind, base, candidates, dtype=dtype)
    cache = ResponseCache(enabled=use_cache)
    tokenizer = load_tokenizer(base)
    failures: list[SuiteFailure] = []
    seconds: dict[str, float] = {}  # scoring wall time per suite (all candidates together)
    frames = []
    try:
        own = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
        with (contextlib.nullcontext(live) if live is not None else own) as bar:
            for suite in suites:
                task_id = bar.add_task(f"  scoring {suite.name} × {len(candidates)} candidates", total=None)
                frame = None
                for attempt in (1, 2):
                    try:
                        frame = score_suite(suite, candidates, backend, cache, tokenizer,
                                            lambda done, total: bar.update(task_id, completed=done, total=total))
                        break
                    except UserError:
                        raise
                    except Exception as err:  # noqa: BLE001 - an engine failure fails this suite, not the run
                        log.error("suite %s failed (attempt %d): %s: %s", suite.name, attempt, type(err).__name__, err)
                        # Restart the engine once: close() drops it and the next request loads a fresh one.
                        # Answers computed before the failure are in the cache and are not recomputed.
                        backend.close()
                        if attempt == 2:
                            failures.append(SuiteFailure(suite.name, f"{type(err).__name__}: {err}", [c.name for c in candidates]))
                bar.remove_task(task_id)
                if frame is None:
                    continue  # nothing of a failed suite is written as if it were complete
                seconds[suite.name] = round(frame.attrs["seconds"], 3)
                store.merge_items(out_dir, frame)
                frames.append(frame)
                log.info("%s: %d items x %d candidates in %.1f s", suite.name, len(suite.rows), len(candidates), frame.attrs["seconds"])
    finally:
        if own_backend:
            backend.close()
        # Whatever happened, scores.json describes what items.parquet now holds.
        write_scores(out_dir, candidates, suites, failures, backend, seconds)
    current = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=store.ITEM_COLUMNS)
    summary = summarize(current) if len(current) else pd.DataFrame()
    return current, summary, failures


def write_scores(out_dir: Path, candidates: list[Candidate], suites: list[Suite], failures: list[SuiteFailure], backend: Backend,
                 seconds: dict[str, float]) -> dict:
    """scores.json for this run (see store.write_scores); also for a run scored in several calls."""
    return store.write_scores(
        out_dir,
        [{"name": c.name, "hash": c.hash, "adapter": str(c.adapter) if c.adapter else None} for c in candidates],
        [{"name": s.name, "version": s.version, "headline": s.headline} for s in suites],
        [f.__dict__ for f in failures],
        {"backend": backend.name, "dtype": backend.dtype, "seconds": seconds},
    )
