"""`harness eval`: every candidate on every suite, one loaded base model, results per item.

lm-eval builds each suite's requests once (the suite's kind says which tasks); the requests of all
candidates go to the backend together (after the cache took what it already knows), and the kind
grades each candidate's answers into per-item rows. `evaluate` returns a `ScoredRun` and writes no
file: the caller records it through `harness.store.results`, once.
"""

from __future__ import annotations

import contextlib
import logging
import time

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.errors import UserError
from harness.models import load_tokenizer
from harness.runtime.processes import raise_if_interrupted
from harness.score.backends import (
    Backend,
    Candidate,
    GenerateRequest,
    LoglikelihoodRequest,
)
from harness.score.cache import ResponseCache
from harness.score.suites import Suite
from harness.store.documents import ScoredCandidate, ScoredSuite, SuiteFailureRecord
from harness.store.results import ITEM_COLUMNS, ScoredRun

log = logging.getLogger(__name__)
COMMIT_REQUESTS = 32  # the cache commits at least every this many answers...
COMMIT_SECONDS = 10.0  # ...or this much backend time, whichever is more (see answer())
MAX_CHUNK = 512  # requests per backend call at most


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
    keys = [ResponseCache.key(backend.name_for(r.candidate), backend.dtype, r) for r in requests]
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


def score_suite(suite: Suite, candidates: list[Candidate], backend: Backend, cache: ResponseCache, tokenizer,
                progress=None) -> tuple[pd.DataFrame, float]:
    """Every candidate on every item of the suite: the requests of all its tasks answered together,
    then graded by the suite's kind. Returns the item rows and the seconds the answers took."""
    tasks = suite.kind.tasks(suite, tokenizer)
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
        rows += suite.kind.grade(suite, task, candidates, answered, None if len(tasks) == 1 else name)
    frame = pd.DataFrame([{**row, "candidate_hash": row["candidate"].hash, "candidate": row["candidate"].name, "suite": suite.name,
                           "suite_version": suite.version, "backend": backend.name_for(row["candidate"]), "dtype": backend.dtype}
                          for row in rows],
                         columns=ITEM_COLUMNS)
    return frame, elapsed


def evaluate(candidates: list[Candidate], suites: list[Suite], backend: Backend, use_cache: bool = True, live=None,
             into: ScoredRun | None = None) -> ScoredRun:
    """Score every candidate on every suite with `backend` (the caller's: it opens and closes it).

    A suite whose scoring fails is retried on a fresh engine candidate by candidate, so that one
    candidate's failure (an adapter the engine cannot load) costs no other its items; a candidate that
    fails alone is recorded as failed on that suite (after `--backend auto` moved it to hf and hf
    failed too) and the run goes on. `live`: a running rich Progress to add the suite bars to (the
    sweep's); else one of our own. `into`: the run to fill, suite by suite (a caller that records it in
    a `finally` keeps what was scored before an interruption); else a new one.
    """
    run = into if into is not None else new_run(candidates, suites, backend)
    cache = ResponseCache(enabled=use_cache)
    tokenizer = load_tokenizer(backend.base)
    own = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
    with (contextlib.nullcontext(live) if live is not None else own) as bar:
        for suite in suites:
            task_id = bar.add_task(f"  scoring {suite.name} × {len(candidates)} candidates", total=None)
            asked, hits = cache.asked, cache.hits

            def score(cands: list[Candidate], suite=suite, task_id=task_id):
                return score_suite(suite, cands, backend, cache, tokenizer,
                                   lambda done, total: bar.update(task_id, completed=done, total=total))

            try:
                frame, seconds = score(candidates)
            except UserError:
                raise
            except Exception as err:  # noqa: BLE001 - an engine failure fails candidates, not the run
                log.error("suite %s failed (all candidates together): %s: %s", suite.name, type(err).__name__, err)
                frame, seconds = _one_by_one(suite, candidates, backend, score, run)
            if frame is not None:
                run.add(suite.name, frame, seconds)
                log.info("%s: %d items x %d candidates in %.1f s (%s)", suite.name, len(suite.rows), frame.candidate.nunique(), seconds,
                         f"{cache.hits - hits} of {cache.asked - asked} answers from the cache" if cache.enabled else "cache off")
            bar.remove_task(task_id)
    return run


def _one_by_one(suite: Suite, candidates: list[Candidate], backend: Backend, score, run: ScoredRun):
    """The retry of a failed suite: the engine restarted (close(): the next request loads a fresh one),
    then each candidate alone. Answers computed before a failure are in the cache, not recomputed."""
    backend.close()
    frames, seconds, failed = [], 0.0, {}
    for cand in candidates:
        for attempt in (1, 2):  # the second only where the backend handed the candidate on (--backend auto: to hf)
            try:
                frame, spent = score([cand])
            except UserError:
                raise
            except Exception as err:  # noqa: BLE001
                reason = f"{type(err).__name__}: {err}"
                log.error("suite %s failed for %s: %s", suite.name, cand.name, reason)
                backend.close()
                if attempt == 1 and backend.reroute(cand, reason):
                    continue
                failed.setdefault(reason, []).append(cand.name)
            else:
                frames.append(frame)
                seconds += spent
            break
    run.failures += [SuiteFailureRecord(suite=suite.name, reason=reason, candidates=names) for reason, names in failed.items()]
    return (pd.concat(frames, ignore_index=True) if frames else None), seconds


def new_run(candidates: list[Candidate], suites: list[Suite], backend: Backend) -> ScoredRun:
    """An empty run of these candidates and suites on `backend`, to be filled by `evaluate`."""
    return ScoredRun(
        candidates=[ScoredCandidate(name=c.name, hash=c.hash, adapter=str(c.adapter) if c.adapter else None) for c in candidates],
        suites=[ScoredSuite(name=s.name, version=s.version, n_items=len(s.rows), headline=s.headline) for s in suites],
        backend=backend.name, dtype=backend.dtype)
