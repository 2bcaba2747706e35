"""Everything the harness keeps on disk: where it lives, what each file holds, and how it is read back.

This is the only module that knows paths and file formats; every stage asks it. Relative to the
working directory:

    runs/eval/                       default output of `harness eval`
    runs/<study>/journal.log         the Optuna study (default storage; sqlite/postgresql URLs instead)
    runs/<study>/artifacts/          the study's artifact store (default; `--artifacts DIR` instead)
    runs/<study>/base/               trial 0 (the base model): items.parquet, scores.json
    runs/<study>/trial-<n>/          adapter files, train.json, items.parquet, scores.json
    runs/<study>/trial-<n>/n<rows>/  multi-fidelity: one such folder per rung climbed
    runs/<study>/worker-<i>.log      extra local workers' output (`--workers N`)
    runs/<study>/neptune/            neptune-scale offline run files
    runs/mlflow.db, runs/mlartifacts/<experiment>/   MLflow (unless MLFLOW_TRACKING_URI is set)
    reports/<name>/                  index.html, leaderboard.md/.csv, results.parquet, best.json,
                                     champion.json and champion-results/ (after `gate --promote`)

An output directory of scores holds `items.parquet` (one row per candidate x suite x item: the
source of truth) and `scores.json` (what was scored, with means and CIs derived from the items).
Optuna trial user attributes are named by `TrialAttr`; the sweep writes them and readers read them
through the same names.

A sweep's trial folders are the worker's scratch space: what a trial made is uploaded to the study's
artifact store (`upload_outputs`) before the trial is told COMPLETE, its attribute `artifacts` holds
the ids, and every reader (`load_study`) fetches from the store into the cache under HARNESS_HOME,
from any working directory on any machine. A missing artifact is an error naming the trial.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd

from harness.config import STORAGE_SCHEMES
from harness.errors import UserError
from harness.runtime.artifacts import ArtifactMissing, ArtifactStore
from harness.runtime.files import atomic_path, read_json, write_json
from harness.stats import metric_frame

log = logging.getLogger(__name__)

RUNS = Path("runs")
REPORTS = Path("reports")
EVAL_DIR = RUNS / "eval"
ITEMS = "items.parquet"
SCORES = "scores.json"
ITEM_KEY = ["candidate_hash", "suite", "suite_version", "item_id"]
TRAIN_RECORD = "train.json"  # inside a trained adapter's folder
MERGE_RECORD = "merge.json"  # inside a merged adapter's folder: its parents, method and weights
CHAMPION = "champion.json"
BEST = "best.json"


# ---------------------------------------------------------------- items and scores of one output directory


ITEM_COLUMNS = ["candidate", "candidate_hash", "suite", "suite_version", "item_id", "prediction", "reference", "score",
                "metrics", "tokens", "extra", "backend", "dtype"]


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


def prepare_output_dir(out_dir: Path) -> None:
    """Before any scoring: the directory can be written, and what it already holds can be read."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out_dir}: cannot create: {err.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UserError(f"--out {out_dir}: not writable")
    read_items(out_dir)
    if (out_dir / SCORES).exists():
        read_scores(out_dir)


def merge_items(out_dir: Path, new: pd.DataFrame) -> pd.DataFrame:
    """Add rows to out_dir/items.parquet atomically.

    A re-scored item replaces its old row; rows of the same candidate name and suite from another
    candidate content or suite version are superseded and dropped, so a directory holds one version
    of each (candidate, suite) and the gate never mixes two models under one name."""
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
    with atomic_path(out_dir / ITEMS) as tmp:
        merged.to_parquet(tmp, index=False)
    return merged


def write_scores(out_dir: Path, candidates: list[dict], suites: list[dict], failures: list[dict], run: dict) -> dict:
    """scores.json derived from everything items.parquet holds (not only this run's part).

    `candidates` ({name, hash, adapter}) and `suites` ({name, version, headline}) describe this run;
    what earlier runs put in the directory keeps the description they wrote. `failures` are this
    run's failed suites: their earlier rows stay in the items, and the failure is recorded beside them.
    `run` holds backend, dtype and seconds per suite."""
    from harness.stats import summarize

    out_dir = Path(out_dir)
    items = read_items(out_dir)
    before = read_scores(out_dir) if (out_dir / SCORES).exists() else {}
    described_c = {c["name"]: c for c in [*before.get("candidates", []), *candidates]}
    described_s = {s["name"]: s for s in [*before.get("suites", []), *suites]}
    present_c = items[["candidate", "candidate_hash"]].drop_duplicates()
    present_s = items.groupby(["suite", "suite_version"], sort=False)["item_id"].nunique()
    doc = {
        **run,
        "candidates": [{"name": name, "hash": h, "adapter": described_c.get(name, {}).get("adapter")}
                       for name, h in present_c.itertuples(index=False)],
        "suites": [{"name": name, "version": version, "n_items": int(n), "headline": described_s.get(name, {}).get("headline")}
                   for (name, version), n in present_s.items()],
        "scores": summarize(items).to_dict(orient="records") if len(items) else [],
        "failures": failures,
    }
    write_json(out_dir / SCORES, doc)
    return doc


def read_scores(out_dir: Path) -> dict:
    return read_json(Path(out_dir) / SCORES, "scores file (the output of harness eval)")


# ---------------------------------------------------------------- studies


def study_dir(study: str) -> Path:
    return RUNS / study


def trial_dir(study: str, number: int) -> Path:
    return study_dir(study) / f"trial-{number}"


def rung_dir(study: str, number: int, n_samples: int) -> Path:
    return trial_dir(study, number) / f"n{n_samples}"


def base_dir(study: str) -> Path:
    return study_dir(study) / "base"


def worker_log(study: str, index: int) -> Path:
    return study_dir(study) / f"worker-{index}.log"


def neptune_dir(study: str) -> Path:
    return study_dir(study) / "neptune"


def journal_file(study: str) -> Path:
    return study_dir(study) / "journal.log"


def storage_for(study: str, url: str | None = None):
    """A study's Optuna storage: the URL given, else its journal file under runs/<study>/."""
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = journal_file(study)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith(STORAGE_SCHEMES):
        # Workers racing on an empty schema can collide while Optuna creates and stamps its tables;
        # the loser retries and finds them made.
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(_with_driver(url), engine_kwargs={"pool_pre_ping": True})
            except ImportError as err:
                raise UserError(f"--storage {shown_url(url)}: no database driver for it ({err.__cause__ or err})") from None
            except Exception as err:  # noqa: BLE001 - sqlalchemy/alembic integrity and operational errors
                if attempt == 4:
                    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                    raise UserError(f"--storage {shown_url(url)}: cannot open the study storage: {first}") from None
                log.debug("storage schema creation raced (%s); retrying", type(err).__name__)
                time.sleep(0.5 + attempt)
    raise UserError(f"--storage {shown_url(url)}: expected a URL starting with {', '.join(STORAGE_SCHEMES)} (or nothing: a journal file under runs/)")


def _with_driver(url: str) -> str:
    """SQLAlchemy 2.1 reads a plain postgresql:// as psycopg (3); we install psycopg2 (the `postgres` extra)."""
    if url.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def shown_url(url: str) -> str:
    """A storage URL fit for logs and errors: any password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy can parse: show only its scheme
        return url.split(":", 1)[0] + ":..."


class TrialAttr:
    """Names of the Optuna trial user attributes the sweep writes and the readers read."""

    CANDIDATE = "candidate"  # "base" on trial 0 (the base model); absent on adapter trials
    KIND = "kind"  # base | sft | dpo | orpo | sft→dpo (dpo from the best sft trial's adapter) | merge
    PARENTS = "parents"  # the candidates a trial started from (sft→dpo) or merged (merge)
    MERGE_METHOD = "merge_method"  # merge: peft's combination type (cat, ties, ...)
    PARAMS = "params"  # what a trial is and cost where its sampled params do not say: a merge's or sft→dpo's n_samples (its
    #                    parents' plus its own) and lora_r (its actual rank)
    ARTIFACTS = "artifacts"  # {items, scores, train, adapter} -> artifact id in the study's artifact store
    N_SAMPLES = "n_samples"  # multi-fidelity: the rung reached (not a sampled param there)
    RUNGS = "rungs"  # multi-fidelity: [{n_samples, objective, train_s, tokens_seen}] climbed
    TRAIN_S = "train_s"
    TOKENS_SEEN = "tokens_seen"
    SCORE_S = "score_s"
    SCORES = "scores"  # summary rows (candidate, suite, metric, value, CI)
    STAGES = "stages"  # seconds per stage of the trial
    WORKER = "worker"  # host:pid of the worker that ran it
    FAIL_REASON = "fail_reason"
    RETRY_OF = "retry_of"  # the number of the dead worker's trial this one retries
    SURPLUS = "surplus"  # asked by a worker after the budget was used up; not a trial of the study


OBJECTIVE_META = "objective"  # study user attribute: weights, headline metric per suite, directions
ARTIFACTS_META = "artifacts"  # study user attribute: the artifact store its first worker wrote to


# ---------------------------------------------------------------- the artifact store of a study


def default_artifacts(study: str) -> str:
    """Relative to the working directory, like the default journal: one machine works out of the box."""
    return str(study_dir(study) / "artifacts")


def open_artifacts(study: optuna.Study, given: str | None, create: bool = False) -> ArtifactStore:
    """The study's artifact store: `given` (--artifacts or the sweep file), else the one the study
    recorded, else runs/<study>/artifacts. The first worker records what it uses; a later worker
    given another URL is warned (the same shared directory can be mounted at different paths)."""
    recorded = study.user_attrs.get(ARTIFACTS_META)
    if given is not None and "://" not in given:
        given = str(Path(given).expanduser().resolve())  # absolute: readers elsewhere see what was meant
    url = given or recorded or default_artifacts(study.study_name)
    if create and recorded is None:
        study.set_user_attr(ARTIFACTS_META, url)
    elif create and recorded != url:
        log.warning("study %s records its artifacts in %s; this worker writes to %s (readers need --artifacts for it)",
                    study.study_name, recorded, url)
    if given is None and not create and not Path(url.removeprefix("file://")).is_dir():
        whose = "recorded by its sweep" if recorded else "the default"
        raise UserError(f"study {study.study_name}: its artifact store {url} ({whose}) is not here; "
                        "give --artifacts with the directory as this machine sees it")
    return ArtifactStore(url, create=create)


def upload_outputs(artifacts: ArtifactStore, out_dir: Path, adapter: Path | None, owner, storage=None) -> dict[str, str]:
    """Upload what a candidate's scoring (and training) made; returns {kind: artifact id} for `TrialAttr.ARTIFACTS`.

    `owner` is the running trial (with `storage` when it is a FrozenTrial), which Optuna lists them under."""
    files = {"items": Path(out_dir) / ITEMS, "scores": Path(out_dir) / SCORES}
    if adapter is not None:
        files["train"] = Path(adapter) / TRAIN_RECORD
    ids = {kind: artifacts.upload_file(path, owner, storage) for kind, path in files.items() if path.is_file()}
    if adapter is not None:
        ids["adapter"] = artifacts.upload_folder(Path(adapter), owner, storage)
    return ids


def is_base_trial(t: optuna.trial.FrozenTrial) -> bool:
    return t.user_attrs.get(TrialAttr.CANDIDATE) == "base"


def candidate_name(t: optuna.trial.FrozenTrial) -> str:
    return "base" if is_base_trial(t) else f"trial-{t.number}"


def kind_of(t: optuna.trial.FrozenTrial) -> str:
    """base, sft, dpo, orpo, sft→dpo or merge (trials of sweeps before kinds were recorded are sft)."""
    return "base" if is_base_trial(t) else t.user_attrs.get(TrialAttr.KIND, "sft")


def params_of(t: optuna.trial.FrozenTrial) -> dict:
    """The trial's params; under multi_fidelity n_samples is the rung it reached, not a sampled param;
    a merge's are its cost (its parents' samples) and its rank."""
    if TrialAttr.PARAMS in t.user_attrs:
        return dict(t.user_attrs[TrialAttr.PARAMS])
    if "n_samples" in t.params or TrialAttr.N_SAMPLES not in t.user_attrs:
        return dict(t.params)
    return {**t.params, "n_samples": t.user_attrs[TrialAttr.N_SAMPLES]}


def rungs_of(t: optuna.trial.FrozenTrial) -> str:
    """Multi-fidelity: the n_samples rungs a trial climbed ("32→96"); each arrow is a promotion."""
    return "→".join(str(r["n_samples"]) for r in t.user_attrs.get(TrialAttr.RUNGS, []))


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
    _headline: dict | None = field(default=None, repr=False)

    def headline_values(self) -> dict[tuple[str, str], pd.Series]:
        """(candidate, suite) -> per-item values of the suite's headline metric, indexed by item id."""
        if self._headline is None:
            long = metric_frame(self.items)
            headline = self.meta.get("headline", {})
            self._headline = {}
            for (cand, suite), group in long.groupby(["candidate", "suite"]):
                metric = headline.get(suite) or group["metric"].iloc[0]
                self._headline[(cand, suite)] = group[group.metric == metric].set_index("item_id")["value"].astype(float)
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
        return data.artifacts.fetch_file(ids[kind], {"items": ITEMS, "scores": SCORES, "train": TRAIN_RECORD}[kind])
    except ArtifactMissing as err:
        raise UserError(f"study {data.name}: trial {number} ({candidate}): its {kind} is missing: {err}") from None


def load_study(study_name: str, storage: str | None = None, artifacts: str | None = None) -> StudyData:
    """Every complete trial with its items, fetched from the study's artifact store (see `open_artifacts`)."""
    if storage is None and not journal_file(study_name).is_file():
        raise UserError(f"study {study_name}: no {journal_file(study_name)} here (give --storage for sqlite/postgresql)")
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
                failed.append({"candidate": name, "kind": kind_of(t), "state": t.state.name, **params, "rungs": rungs_of(t),
                               "reason": t.user_attrs.get(A.FAIL_REASON, "")})
            continue
        if A.ARTIFACTS not in t.user_attrs:
            raise UserError(f"study {study_name}: trial {t.number} ({name}) records no artifacts "
                            "(written by a harness before the artifact store; re-run its sweep)")
        rows.append({"candidate": name, "kind": kind_of(t), "number": t.number, "is_base": name == "base", **params, "_params": params,
                     "parents": ", ".join(t.user_attrs.get(A.PARENTS, [])), "rungs": rungs_of(t),
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


# ---------------------------------------------------------------- results to gate


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
        scores = read_scores(path)
        items = read_items(path, missing_ok=False)
        adapters = {c["name"]: c.get("adapter") for c in scores.get("candidates", [])}
        return cls(path.resolve().name, path, items, scores.get("failures", []),
                   adapters={n: adapters.get(n) for n in dict.fromkeys(items["candidate"])})

    @classmethod
    def from_study(cls, data: StudyData) -> Results:
        return cls(data.name, study_dir(data.name), data.items, [], study=data)

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


# ---------------------------------------------------------------- reports, champion, MLflow


def report_dir(name: str) -> Path:
    return REPORTS / name


def best_file(study: str) -> Path:
    return report_dir(study) / BEST


def champion_file(name: str) -> Path:
    return report_dir(name) / CHAMPION


def champion_results_dir(name: str) -> Path:
    """The champion's own copy of its items: an eval directory is overwritten by the next eval."""
    return report_dir(name) / "champion-results"


def current_champion(name: str) -> dict | None:
    path = champion_file(name)
    return read_json(path, "champion record") if path.is_file() else None


def mlflow_uri() -> str:
    """MLFLOW_TRACKING_URI, else the embedded SQLite store runs/mlflow.db."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(RUNS / 'mlflow.db').resolve()}"


def mlflow_artifacts(experiment: str) -> str:
    """Artifact location of an MLflow experiment we create (else artifacts land in ./mlruns)."""
    return (RUNS / "mlartifacts" / experiment).resolve().as_uri()
