"""Where a learning curve's items come from: an items file (scores made anywhere) or a sweep study.

From a study, the point at each size is the best configuration there; where a size has several
configurations to choose from, the winner of the same items it is then fitted on looks better than it
is (up to about a standard error), so the items are split in two by a hash of suite and item id: the
configuration at each size is chosen on one half and the curve fitted on the other. A configuration's
replicates (`replicates:`) are its repeated runs at that size.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pandas as pd

from harness.errors import UserError


def read_items_file(path: Path) -> pd.DataFrame:
    """--items: CSV or Parquet with columns n_samples, item_id, score (optional group, run)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--items {path}: no such file")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as err:  # noqa: BLE001 - pandas/pyarrow raise many kinds for a damaged file
        raise UserError(f"--items {path}: not a readable {'Parquet' if path.suffix == '.parquet' else 'CSV'} file "
                        f"({type(err).__name__}: {str(err)[:120]})") from None
    if missing := [c for c in ("n_samples", "item_id", "score") if c not in frame.columns]:
        raise UserError(f"--items {path}: columns {', '.join(missing)} missing (need n_samples, item_id, score; optional run, group)")
    for column in ("n_samples", "score"):
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raw = frame[column].iloc[row]
            if pd.isna(raw):  # an empty cell (its repr would read np.float64(nan))
                raise UserError(f"--items {path}: {column} in row {row + 2} is empty")
            raise UserError(f"--items {path}: {column} {raw!r} in row {row + 2} is not a number")
        frame[column] = values
    if (frame.n_samples <= 0).any():
        row = int((frame.n_samples <= 0).to_numpy().argmax())
        raise UserError(f"--items {path}: n_samples {frame.n_samples.iloc[row]:g} in row {row + 2} must be positive")
    return frame.assign(item_id=frame.item_id.astype(str))


def curve_metric(data, target: tuple[str, float] | None) -> str | None:
    """SUITE.METRIC of the learning curve: the target's, else the headline of the most weighted suite."""
    if target is not None:
        return target[0]
    weights, headline = data.meta.get("weights", {}), data.meta.get("headline", {})
    suites = sorted(set(data.items.suite)) if len(data.items) else []
    if not suites:
        return None
    task = max(suites, key=lambda s: weights.get(s, 0))
    return f"{task}.{headline.get(task) or 'score'}"


def is_fitted_half(suite: str, item_id: str) -> bool:
    """The half of a suite's items a learning curve is fitted on (the other half chooses its points)."""
    return zlib.crc32(f"forecast\0{suite}\0{item_id}".encode()) % 2 == 0


def known_metrics(data) -> list[str]:
    """Every SUITE.METRIC the study's items hold."""
    return sorted({f"{s}.{m}" for s, m in data.metrics[["suite", "metric"]].drop_duplicates().itertuples(index=False)})


def study_items(data, metric: str, group: str | None = None) -> tuple[pd.DataFrame, str]:
    """A study's per-item values of SUITE.METRIC against n_samples (the base model aside), and a note
    saying how the points were chosen.

    Default: the best configuration at each n (highest mean of the metric, its replicates averaged).
    `group` "PARAM=VALUE" keeps the trials whose PARAM is VALUE instead (nothing is chosen); several
    at one n are repeated runs."""
    suite, _, name = metric.rpartition(".")
    trials = data.trials[~data.trials.is_base]
    if "n_samples" not in trials:
        raise UserError(f"study {data.name}: its trials have no n_samples; nothing to forecast against")
    if group:
        param, sep, value = group.partition("=")
        if not sep or param not in trials:
            raise UserError(f"--group {group}: expected PARAM=VALUE with PARAM one of {', '.join(data.params)}")
        trials = trials[[_same(v, value) for v in trials[param]]]
        if trials.empty:
            raise UserError(f"--group {group}: no complete trial has {param}={value}")
    long = data.metrics[data.metrics.candidate.isin(trials.candidate)]
    long = long[(long.suite == suite) & (long.metric == name)]
    if long.empty:
        raise UserError(f"--metric {metric}: no such metric in study {data.name} (it has: {', '.join(known_metrics(data))})")
    n_of = dict(zip(trials.candidate, trials.n_samples, strict=True))
    config_of = _configurations(trials)
    long = long.assign(n_samples=long.candidate.map(n_of).astype(float), score=long.value.astype(float), run=long.candidate,
                       config=long.candidate.map(config_of))
    if group:
        return long[["n_samples", "item_id", "score", "run"]], f"the trials with {group} at each size"
    choices = long.groupby("n_samples").config.nunique()
    if (choices <= 1).all():
        return long[["n_samples", "item_id", "score", "run"]], "one configuration at each size"
    fitted = long.item_id.map(lambda item: is_fitted_half(suite, item))
    choosing = long[~fitted]
    means = choosing.groupby(["n_samples", "config"]).score.mean().reset_index()
    best = set(means.sort_values("score", kind="stable").groupby("n_samples").tail(1).config)
    chosen = long[fitted & long.config.isin(best)]
    note = (f"the best configuration at each size, chosen on half of the items and fitted on the other half "
            f"({chosen.item_id.nunique()} items), so the points are not the winners' own scores")
    return chosen[["n_samples", "item_id", "score", "run"]], note


def _same(param_value, asked: str) -> bool:
    """A parameter's value as the user wrote it: 16 matches 16.0 (a column with gaps is float)."""
    try:
        return float(param_value) == float(asked)
    except (TypeError, ValueError):
        return str(param_value) == asked


def _configurations(trials: pd.DataFrame) -> dict[str, str]:
    """candidate -> its configuration (the first trial of its replicates)."""
    if "replicate_of" not in trials:
        return {c: c for c in trials.candidate}
    by_number = dict(zip(trials.number, trials.candidate, strict=True))
    return {row.candidate: by_number.get(int(row.replicate_of), row.candidate) if pd.notna(row.replicate_of) else row.candidate
            for row in trials.itertuples()}
