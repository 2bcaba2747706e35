"""Read models: a sweep study as the report, leaderboard and forecast read it (`StudyData`), and the
items a gate judges (`Results`: an eval directory or a study).

A sweep's trial folders are its workers' scratch space: readers never look there, only at the study
and its artifact store (every complete trial's items fetched into the cache under HARNESS_HOME), so
they work from any working directory on any machine. A missing artifact is an error naming the trial.
Each read model parses the items' metrics once (`metrics`) for every reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import optuna
import pandas as pd

from harness.errors import UserError
from harness.stats.summary import metric_frame
from harness.store import documents, paths
from harness.store.artifacts import ArtifactMissing, ArtifactStore
from harness.store.documents import ChampionDoc, ScoresDoc
from harness.store.paths import ITEMS, SCORES
from harness.store.results import read_items, read_scores
from harness.store.study import (
    OBJECTIVE_META,
    OUTPUT_FILES,
    TrialAttr,
    candidate_name,
    open_artifacts,
    params_of,
    rungs_of,
    storage_for,
    trial_kind,
)

S = optuna.trial.TrialState


@dataclass
class StudyData:
    """A study as the report, leaderboard and gate read it: trials, their items, the objective."""

    name: str
    study: optuna.Study
    meta: dict  # weights, headline, directions (written by the sweep)
    trials: pd.DataFrame  # one row per candidate (base + complete trials)
    failed: pd.DataFrame  # failed / pruned trials with their reasons
    items: pd.DataFrame  # every candidate's items
    params: list[str]  # the searched parameters
    artifacts: ArtifactStore | None = None

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """The items' metrics, parsed once: one row per (candidate, suite, item, metric)."""
        return metric_frame(self.items)

    @cached_property
    def _headline(self) -> dict[tuple[str, str], pd.Series]:
        headline = self.meta.get("headline", {})
        out = {}
        for (cand, suite), group in self.metrics.groupby(["candidate", "suite"]):
            metric = headline.get(suite) or group["metric"].iloc[0]
            out[(cand, suite)] = group[group.metric == metric].set_index("item_id")["value"].astype(float)
        return out

    def headline_values(self) -> dict[tuple[str, str], pd.Series]:
        """(candidate, suite) -> per-item values of the suite's headline metric, indexed by item id."""
        return self._headline

    def output(self, candidate: str, kind: str) -> Path | None:
        """A candidate's `items`/`scores`/`train` file or `adapter` folder, fetched into the cache; None
        where the trial has none (the base model has no adapter)."""
        row = self.trials[self.trials.candidate == candidate].iloc[0]
        return _fetch(self, int(row.number), candidate, row.outputs, kind)


def _fetch(data: StudyData, number: int, candidate: str, ids: dict, kind: str) -> Path | None:
    if kind not in ids:
        return None
    try:
        if kind == "adapter":
            return data.artifacts.fetch_folder(ids[kind])
        return data.artifacts.fetch_file(ids[kind], OUTPUT_FILES[kind])
    except ArtifactMissing as err:
        raise UserError(f"study {data.name}: trial {number} ({candidate}): its {kind} is missing: {err}") from None


def load_study(study_name: str, storage: str | None = None, artifacts: str | None = None) -> StudyData:
    """Every complete trial with its items, fetched from the study's artifact store (see `open_artifacts`)."""
    if storage is None and not paths.journal_file(study_name).is_file():
        raise UserError(f"study {study_name}: no {paths.journal_file(study_name)} here (give --storage for sqlite/postgresql)")
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_for(study_name, storage))
    except KeyError:
        raise UserError(f"study {study_name}: not found in {storage or 'its journal file'}") from None
    meta = study.user_attrs.get(OBJECTIVE_META, {})
    rows, failed = [], []
    A = TrialAttr
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(A.SURPLUS):
            continue
        name, params = candidate_name(t), params_of(t)
        if t.state != S.COMPLETE:
            if t.state in (S.FAIL, S.PRUNED):
                failed.append({"candidate": name, "kind": trial_kind(t), "state": t.state.name, **params, "rungs": rungs_of(t),
                               "reason": t.user_attrs.get(A.FAIL_REASON, "")})
            continue
        if A.ARTIFACTS not in t.user_attrs:
            raise UserError(f"study {study_name}: trial {t.number} ({name}) records no artifacts "
                            "(written by a harness before the artifact store; re-run its sweep)")
        rows.append({"candidate": name, "kind": trial_kind(t), "number": t.number, "is_base": name == "base", **params, "_params": params,
                     "parents": ", ".join(t.user_attrs.get(A.PARENTS, [])), "rungs": rungs_of(t),
                     "replicate_of": t.user_attrs.get(A.REPLICATE_OF), "chosen_because": t.user_attrs.get(A.CHOSEN_BECAUSE),
                     **{f"objective{i or ''}": v for i, v in enumerate(t.values)},
                     "train_s": t.user_attrs.get(A.TRAIN_S, 0.0), "tokens_seen": t.user_attrs.get(A.TOKENS_SEEN, 0),
                     "score_s": t.user_attrs.get(A.SCORE_S), "outputs": t.user_attrs[A.ARTIFACTS],
                     "start": t.datetime_start, "complete": t.datetime_complete})
    if not rows:
        raise UserError(f"study {study_name}: no complete trials yet")
    params = list(dict.fromkeys(k for t in study.get_trials(deepcopy=False) for k in params_of(t)))
    trials, failed = pd.DataFrame(rows), pd.DataFrame(failed)
    if not trials.parents.astype(bool).any():  # no trial started from or merged others
        trials = trials.drop(columns="parents")
    if trials.replicate_of.isna().all():  # no configuration re-trained with other seeds
        trials = trials.drop(columns="replicate_of")
    if trials.chosen_because.isna().all():  # sizes not chosen by the sweep (adaptive n_samples)
        trials = trials.drop(columns="chosen_because")
    if not trials.rungs.astype(bool).any():  # not a multi-fidelity study
        trials = trials.drop(columns="rungs")
        failed = failed.drop(columns="rungs", errors="ignore")
    data = StudyData(study_name, study, meta, trials, failed, pd.DataFrame(), params, open_artifacts(study, artifacts))
    # Every candidate's items, or an error naming the trial: never a report on fewer candidates than the study has.
    frames = []
    for row in trials.itertuples():
        path = _fetch(data, row.number, row.candidate, row.outputs, "items")
        if path is None:
            raise UserError(f"study {study_name}: trial {row.number} ({row.candidate}) uploaded no items")
        frames.append(read_items(path.parent, missing_ok=False))
    data.items = pd.concat(frames, ignore_index=True)
    return data


@dataclass
class Results:
    """The items to gate: one eval output directory, or every complete candidate of a sweep study."""

    name: str  # the eval directory's or the study's name: the champion is kept per name
    path: Path  # where the results were read from, for messages
    items: pd.DataFrame
    failures: list[dict]
    study: StudyData | None = None  # a sweep study: adapters and scores come from its artifact store
    adapters: dict[str, str | None] = field(default_factory=dict)  # an eval directory: candidate -> adapter path

    @classmethod
    def load(cls, path: Path) -> Results:
        if not (path / ITEMS).is_file() or not (path / SCORES).is_file():
            raise UserError(f"--results {path}: no {ITEMS} and {SCORES} here (the output of harness eval)")
        scores: ScoresDoc = read_scores(path)
        items = read_items(path, missing_ok=False)
        adapters = scores.adapters()
        return cls(path.resolve().name, path, items, [f.model_dump() for f in scores.failures],
                   adapters={n: adapters.get(n) for n in dict.fromkeys(items["candidate"])})

    @classmethod
    def from_study(cls, data: StudyData) -> Results:
        return cls(data.name, paths.study_dir(data.name), data.items, [], study=data)

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """The items' metrics, parsed once: one row per (candidate, suite, item, metric)."""
        return self.study.metrics if self.study is not None else metric_frame(self.items)

    def candidates(self) -> list[str]:
        return list(dict.fromkeys(self.items["candidate"]))

    def adapter(self, candidate: str) -> str | None:
        """The candidate's adapter folder (a study's is fetched from its artifact store)."""
        if self.study is not None:
            path = self.study.output(candidate, "adapter")
            return str(path) if path else None
        return self.adapters.get(candidate)

    def scores_file(self, candidate: str) -> Path:
        """The scores.json the candidate's items came with."""
        return self.study.output(candidate, "scores") if self.study is not None else self.path / SCORES


def current_champion(name: str) -> ChampionDoc | None:
    """The champion record of `name` (its champion.json), if a candidate was promoted under that name."""
    path = paths.champion_file(name)
    return documents.read(path, ChampionDoc) if path.is_file() else None
