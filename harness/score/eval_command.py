"""`harness eval` as one call: start the backend, score every candidate on every suite, record the
run in the output directory once (also when interrupted: what was scored is kept), close the backend."""

from __future__ import annotations

from pathlib import Path

from harness.models import BaseModel
from harness.score.backends import Backend, Candidate, create
from harness.score.evaluate import evaluate, new_run
from harness.score.suites import Suite
from harness.store import paths, results
from harness.store.documents import ScoresDoc
from harness.store.results import ScoredRun


def run(base: BaseModel, candidates: list[Candidate], suites: list[Suite], backend_kind: str = "hf", dtype: str = "float32",
        out_dir: Path = paths.EVAL_DIR, use_cache: bool = True, backend: Backend | None = None,
        server: str | None = None) -> tuple[ScoredRun, ScoresDoc]:
    """Score and record; returns this run and the directory's scores.json (which describes every
    item the directory holds, earlier runs' included). `backend`: an open engine to use (not closed here)."""
    results.prepare_output_dir(out_dir)  # a bad --out fails before any scoring, not after
    engine = backend or create(backend_kind, base, candidates, dtype=dtype, server=server)
    scored = new_run(candidates, suites, engine)
    try:
        evaluate(candidates, suites, engine, use_cache=use_cache, into=scored)
    finally:
        if backend is None:
            engine.close()
        doc = results.record(out_dir, scored)
    return scored, doc
