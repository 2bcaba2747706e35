"""Per-item scores made anywhere, as the harness's own read models: a table of items (CSV or
Parquet) or lm-eval's `--log_samples` output, for `harness report --items` and `harness gate --items`.

A table: one row per candidate x suite x item, columns `candidate`, `suite`, `item_id`, `score`;
optional `metric` (several metrics per item as several rows; default name `score`, so a gate rule
names SUITE.score) and cost columns (any other numeric column, e.g. n_samples, lora_r: the pick
prefers lower values, in the order the columns come). The candidate named `base` is the base model.

lm-eval: a directory that `lm_eval ... --output_path DIR --log_samples` wrote (one folder per model
under it, `samples_<task>_<time>.jsonl` files in each), or one model's folder. A candidate is a model
folder; a task is a suite; each logged document an item (its doc_id), each numeric per-document
metric a metric named as lm-eval names it (`acc,none`). The newest file of each task is read. The
base is the one run without `peft=`/`delta=` in its model_args, if exactly one; `--base` names it
otherwise.

The suites weigh equally in the objective; a suite's headline is its first metric.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from harness.errors import UserError
from harness.store.reading import Results, StudyData
from harness.store.results import ITEM_COLUMNS

REQUIRED = ("candidate", "suite", "item_id", "score")


def read(path: Path, base: str = "base") -> pd.DataFrame:
    """The items at `path` (a table or an lm-eval output directory) in items.parquet's layout."""
    path = Path(path)
    if path.is_dir():
        items = _lmeval(path, base)
    elif path.is_file():
        items = _table(path, base)
    else:
        raise UserError(f"--items {path}: no such file or directory")
    names = list(dict.fromkeys(items.candidate))
    if base != "base" and base not in names:  # a misspelt --base would silently leave the report without its base
        raise UserError(f"--base {base}: no candidate of that name in {path} ({', '.join(names[:8])})")
    return items


def _table(path: Path, base: str) -> pd.DataFrame:
    kind = "Parquet" if path.suffix == ".parquet" else "CSV"
    try:
        frame = pd.read_parquet(path) if kind == "Parquet" else pd.read_csv(path)
    except Exception as err:  # noqa: BLE001 - pandas/pyarrow raise many kinds for a damaged file
        raise UserError(f"--items {path}: not a readable {kind} file ({type(err).__name__}: {str(err)[:120]})") from None
    if missing := [c for c in REQUIRED if c not in frame.columns]:
        raise UserError(f"--items {path}: column(s) {', '.join(missing)} missing (need {', '.join(REQUIRED)}; optional metric "
                        "and cost columns)")
    if frame.empty:
        raise UserError(f"--items {path}: no rows")
    scores = pd.to_numeric(frame.score, errors="coerce")
    if bad := [i for i, (raw, v) in enumerate(zip(frame.score, scores, strict=True)) if math.isnan(v) and not _missing(raw)]:
        raise UserError(f"--items {path}: score: row {bad[0] + 2}: {frame.score.iloc[bad[0]]!r} is not a number")
    costs = [c for c in frame.columns if c not in (*REQUIRED, "metric")]
    for c in costs:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            raise UserError(f"--items {path}: cost column {c}: must be numbers (got {frame[c].iloc[0]!r})")
    frame = frame.assign(score=scores, metric=frame["metric"].astype(str) if "metric" in frame else "score",
                         candidate=frame.candidate.astype(str), suite=frame.suite.astype(str), item_id=frame.item_id.astype(str))
    dupes = frame.duplicated(["candidate", "suite", "item_id", "metric"])
    if dupes.any():
        r = frame[dupes].iloc[0]
        raise UserError(f"--items {path}: candidate {r.candidate}, suite {r.suite}, item {r.item_id}: scored twice")
    items = _as_items(frame, "table")
    items.attrs["costs"] = {cand: {c: float(g[c].iloc[0]) for c in costs} for cand, g in frame.groupby("candidate")}
    items.attrs["base"] = base
    return items


def _missing(raw) -> bool:
    return raw is None or (isinstance(raw, float) and math.isnan(raw)) or (isinstance(raw, str) and raw.strip().lower() in ("", "nan"))


def _lmeval(root: Path, base: str) -> pd.DataFrame:
    folders = [root] if list(root.glob("samples_*.jsonl")) else sorted(p for p in root.iterdir() if p.is_dir() and list(p.glob("samples_*.jsonl")))
    if not folders:
        raise UserError(f"--items {root}: no samples_*.jsonl here or one folder down (run lm_eval with --output_path and --log_samples)")
    rows, plain = [], []
    for folder in folders:
        newest: dict[str, Path] = {}
        for f in sorted(folder.glob("samples_*.jsonl")):  # names end in a sortable timestamp
            task = f.stem[len("samples_"):].rsplit("_", 1)[0]
            newest[task] = f
        for task, f in newest.items():
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    sample = json.loads(line)
                    doc_id, filt = sample["doc_id"], sample.get("filter", "none")
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise UserError(f"--items {f}: line {n}: not an lm-eval sample ({type(err).__name__}: {str(err)[:80]})") from None
                for metric in sample.get("metrics", []):
                    value = sample.get(metric)
                    if isinstance(value, bool | int | float):
                        rows.append({"candidate": folder.name, "suite": task, "item_id": str(doc_id), "metric": f"{metric},{filt}",
                                     "score": float(value)})
        if not _adapter_run(folder):
            plain.append(folder.name)
    if not rows:
        raise UserError(f"--items {root}: the samples hold no numeric per-document metric")
    items = _as_items(pd.DataFrame(rows), "lm-eval")
    items.attrs["costs"] = {}
    items.attrs["base"] = plain[0] if base == "base" and len(plain) == 1 and len(folders) > 1 else base
    return items


def _adapter_run(folder: Path) -> bool:
    """Did lm-eval run this folder's model with an adapter (peft= or delta= in its model_args)?"""
    for f in sorted(folder.glob("results_*.json"), reverse=True):
        try:
            args = json.loads(f.read_text(encoding="utf-8")).get("config", {}).get("model_args", "")
        except (json.JSONDecodeError, OSError):
            continue
        text = json.dumps(args) if isinstance(args, dict) else str(args)
        return "peft" in text or "delta" in text
    return True  # no results file: cannot tell it is the base


def _as_items(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rows of (candidate, suite, item_id, metric, score) -> items.parquet rows (metrics as JSON)."""
    out = []
    for (cand, suite, item), g in frame.groupby(["candidate", "suite", "item_id"], sort=False):
        metrics = dict(zip(g.metric, g.score, strict=True))
        out.append({"candidate": cand, "candidate_hash": cand, "suite": suite, "suite_version": source, "item_id": item,
                    "prediction": "", "reference": "", "score": float(g.score.iloc[0]), "metrics": json.dumps(metrics),
                    "tokens": 0, "extra": "{}", "backend": source, "dtype": ""})
    return pd.DataFrame(out, columns=ITEM_COLUMNS)


def study(name: str, items: pd.DataFrame) -> StudyData:
    """The items as the report and pick read a study: one trial per candidate, suites weighted equally."""
    base = items.attrs.get("base", "base")
    costs = items.attrs.get("costs", {})
    items = items.assign(candidate=items.candidate.replace({base: "base"})) if base != "base" else items
    suites = list(dict.fromkeys(items.suite))
    headline = {s: next(iter(json.loads(items[items.suite == s].metrics.iloc[0]))) for s in suites}
    meta = {"weights": {s: 1 / len(suites) for s in suites}, "headline": headline, "directions": ["maximize"],
            "costs": list(dict.fromkeys(c for v in costs.values() for c in v))}
    data = StudyData(name, None, meta, pd.DataFrame(), pd.DataFrame(), items.reset_index(drop=True), meta["costs"])
    rows = []
    for number, cand in enumerate(dict.fromkeys(data.items.candidate)):
        values = data.headline_values()
        means = [values[(cand, s)].mean() if (cand, s) in values else math.nan for s in suites]
        own = costs.get(base if cand == "base" else cand, {})
        rows.append({"candidate": cand, "kind": "external", "number": number, "is_base": cand == "base", **own, "_params": own,
                     "objective": sum(means) / len(suites), "outputs": {}})
    data.trials = pd.DataFrame(rows)
    return data


def results(name: str, items: pd.DataFrame) -> Results:
    """The items as the gate reads results."""
    base = items.attrs.get("base", "base")
    items = items.assign(candidate=items.candidate.replace({base: "base"})) if base != "base" else items
    return Results(name, Path(name), items.reset_index(drop=True), [])
