"""A scores directory: `items.parquet` (one row per candidate x suite x item, the source of truth) and
`scores.json` (a `ScoresDoc` derived from every item the directory holds).

Scoring returns a `ScoredRun` and writes nothing; `record` writes it here once. A directory keeps
one version of each (candidate name, suite): rows of another candidate content or suite version
under the same names are superseded, so a gate never mixes two models under one name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.errors import UserError
from harness.runtime.files import atomic_path
from harness.stats.summary import summarize
from harness.store import documents
from harness.store.documents import ScoredCandidate, ScoredSuite, ScoreRow, ScoresDoc, SuiteFailureRecord
from harness.store.paths import ITEMS, SCORES

ITEM_COLUMNS = ["candidate", "candidate_hash", "suite", "suite_version", "item_id", "prediction", "reference", "score",
                "metrics", "tokens", "extra", "backend", "dtype"]
ITEM_KEY = ["candidate_hash", "suite", "suite_version", "item_id"]


@dataclass
class ScoredRun:
    """What one scoring run produced, in memory: its item rows and how it went.

    Filled suite by suite, so a caller that records it in a `finally` keeps whatever was scored
    before an interruption."""

    candidates: list[ScoredCandidate]
    suites: list[ScoredSuite]  # n_items: the suite's items in this run
    backend: str
    dtype: str
    frames: list[pd.DataFrame] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # scoring wall time per suite, all candidates together
    failures: list[SuiteFailureRecord] = field(default_factory=list)

    @property
    def items(self) -> pd.DataFrame:
        return pd.concat(self.frames, ignore_index=True) if self.frames else pd.DataFrame(columns=ITEM_COLUMNS)

    def add(self, suite: str, frame: pd.DataFrame, seconds: float) -> None:
        self.frames.append(frame)
        self.seconds[suite] = round(self.seconds.get(suite, 0.0) + seconds, 3)

    def extend(self, other: ScoredRun) -> None:
        """Fold in a later part of the same run (a sweep scores a trial in parts)."""
        self.frames += other.frames
        for suite, s in other.seconds.items():
            self.seconds[suite] = round(self.seconds.get(suite, 0.0) + s, 3)
        self.failures += other.failures


def summary_frame(doc: ScoresDoc) -> pd.DataFrame:
    """The rows of a scores document as a frame: one row per (candidate, suite, metric) with its mean and CI."""
    return pd.DataFrame([r.model_dump() for r in doc.scores], columns=list(ScoreRow.model_fields))


# ---------------------------------------------------------------- reading


def read_items(out_dir: Path, missing_ok: bool = True) -> pd.DataFrame:
    """out_dir/items.parquet; a file that is not one (corrupt, truncated, other columns) is a UserError."""
    path = Path(out_dir) / ITEMS
    if not path.is_file():
        if missing_ok:
            return pd.DataFrame(columns=ITEM_COLUMNS)
        raise UserError(f"{path}: no such file (the output of harness eval)")
    try:
        items = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a damaged file
        raise UserError(f"{path}: not a readable items file ({type(err).__name__}: {str(err)[:120]})") from None
    if missing := [c for c in ITEM_COLUMNS if c not in items.columns]:
        raise UserError(f"{path}: not a harness items file (columns {', '.join(missing)} missing)")
    return items


def read_scores(out_dir: Path) -> ScoresDoc:
    return documents.read(Path(out_dir) / SCORES, ScoresDoc)


def writable_dir(out_dir: Path, flag: str = "--out") -> Path:
    """A directory to write into (`flag` names it in errors): it exists (made if need be) and can be written, or one line says why."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{flag} {out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{flag} {out_dir}: cannot create: {err.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out_dir}: not writable")
    return out_dir


def prepare_output_dir(out_dir: Path) -> None:
    """Before any scoring: the directory can be written, and what it already holds can be read."""
    out_dir = writable_dir(out_dir)
    read_items(out_dir)
    if (out_dir / SCORES).exists():
        read_scores(out_dir)


# ---------------------------------------------------------------- writing


def merge_items(out_dir: Path, new: pd.DataFrame) -> pd.DataFrame:
    """Add rows to out_dir/items.parquet atomically; returns everything it now holds.

    A re-scored item replaces its old row; rows of the same candidate name and suite from another
    candidate content or suite version are superseded and dropped."""
    out_dir = Path(out_dir)
    if (out_dir / ITEMS).exists():
        old = read_items(out_dir)
        current = new[["candidate", "suite", "candidate_hash", "suite_version"]].drop_duplicates()
        joined = old[["candidate", "suite", "candidate_hash", "suite_version"]].merge(
            current, on=["candidate", "suite"], how="left", suffixes=("", "_new"))
        superseded = joined["candidate_hash_new"].notna() & ((joined["candidate_hash"] != joined["candidate_hash_new"])
                                                             | (joined["suite_version"] != joined["suite_version_new"]))
        merged = pd.concat([old[~superseded.to_numpy()], new], ignore_index=True).drop_duplicates(ITEM_KEY, keep="last")
    else:
        merged = new
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / ITEMS) as tmp:
        merged.to_parquet(tmp, index=False)
    return merged


def record(out_dir: Path, run: ScoredRun) -> ScoresDoc:
    """Write `run` into out_dir: its items merged into items.parquet, then scores.json derived from
    everything the directory now holds (not only this run's part). What earlier runs put there keeps
    the description they wrote; this run's failed suites are recorded beside their earlier rows."""
    out_dir = Path(out_dir)
    items = merge_items(out_dir, run.items) if run.frames else read_items(out_dir)
    before = read_scores(out_dir) if (out_dir / SCORES).exists() else ScoresDoc()
    described_c = {c.name: c for c in [*before.candidates, *run.candidates]}
    described_s = {s.name: s for s in [*before.suites, *run.suites]}
    present_c = items[["candidate", "candidate_hash"]].drop_duplicates()
    scored_on = items.groupby("candidate")["backend"].agg(lambda b: ", ".join(sorted(set(b)))).to_dict() if len(items) else {}
    present_s = items.groupby(["suite", "suite_version"], sort=False)["item_id"].nunique()
    doc = ScoresDoc(
        backend=run.backend, dtype=run.dtype, seconds=run.seconds,
        candidates=[ScoredCandidate(name=name, hash=h, adapter=described_c[name].adapter if name in described_c else None,
                                    backend=scored_on.get(name)) for name, h in present_c.itertuples(index=False)],
        suites=[ScoredSuite(name=name, version=version, n_items=int(n), headline=described_s[name].headline if name in described_s else None)
                for (name, version), n in present_s.items()],
        scores=[ScoreRow(**row) for row in summarize(items).to_dict(orient="records")] if len(items) else [],
        failures=run.failures,
    )
    documents.write(out_dir / SCORES, doc)
    return doc
