"""A sweep's Optuna study: its storage, the trial attributes the harness writes, and `StudyHandle`,
the one object that touches Optuna's private API.

Optuna's public API asks and tells trials of `study.optimize`; a sweep also needs what it does not
offer: trials created as claims by any worker (the base model's trial, each merge), attributes and
states set on a trial by id from another thread (heartbeats) or another machine (a dead worker's
trial failed), intermediate values reported outside `trial.report`. Those go through the study's
storage by trial id; `StudyHandle` is the only place that reads `study._storage`,
`trial._trial_id` or `study._study_id`.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import optuna

from harness.config import STORAGE_SCHEMES
from harness.errors import UserError
from harness.store import paths
from harness.store.artifacts import ArtifactStore, is_local
from harness.store.paths import ITEMS, SCORES, TRAIN_RECORD

log = logging.getLogger(__name__)
S = optuna.trial.TrialState


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
    REPLICATE_OF = "replicate_of"  # the number of the trial whose configuration this one re-trains with another seed
    CHOSEN_BECAUSE = "chosen_because"  # adaptive n_samples: why the sweep trained this size (forecast/planning.py)
    SURPLUS = "surplus"  # asked by a worker after the budget was used up; not a trial of the study


OBJECTIVE_META = "objective"  # study user attribute: weights, headline metric per suite, directions
ADAPTIVE_META = "adaptive_stopped"  # study user attribute: why an adaptive-sizes sweep stopped choosing sizes
ARTIFACTS_META = "artifacts"  # study user attribute: the artifact store its first worker wrote to
OUTPUT_FILES = {"items": ITEMS, "scores": SCORES, "train": TRAIN_RECORD}  # what a trial uploads besides its adapter folder


# ---------------------------------------------------------------- storage


def storage_for(study: str, url: str | None = None):
    """A study's Optuna storage: the URL given, else its journal file under runs/<study>/."""
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = paths.journal_file(study)
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


# ---------------------------------------------------------------- what a trial is


def is_base_trial(t: optuna.trial.FrozenTrial) -> bool:
    return t.user_attrs.get(TrialAttr.CANDIDATE) == "base"


def candidate_name(t: optuna.trial.FrozenTrial) -> str:
    return "base" if is_base_trial(t) else f"trial-{t.number}"


def trial_kind(t: optuna.trial.FrozenTrial) -> str:
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


# ---------------------------------------------------------------- the study's artifact store


def open_artifacts(study: optuna.Study, given: str | None, create: bool = False) -> ArtifactStore:
    """The study's artifact store: `given` (--artifacts or the sweep file), else the one the study
    recorded, else runs/<study>/artifacts. The first worker records what it uses; a later worker
    given another URL is warned (the same shared directory can be mounted at different paths)."""
    recorded = study.user_attrs.get(ARTIFACTS_META)
    if given is not None and "://" not in given:
        given = str(Path(given).expanduser().resolve())  # absolute: readers elsewhere see what was meant
    url = given or recorded or paths.default_artifacts(study.study_name)
    if given is None and not create and is_local(url) and not Path(url.removeprefix("file://")).is_dir():
        whose = "recorded by its sweep" if recorded else "the default"
        raise UserError(f"study {study.study_name}: its artifact store {url} ({whose}) is not here; "
                        "give --artifacts with the directory as this machine sees it")
    store = ArtifactStore(url, create=create, label="--artifacts" if given else f"study {study.study_name}: its artifact store")
    if create and recorded is None:  # recorded once the store answered: a mistyped bucket is not remembered
        study.set_user_attr(ARTIFACTS_META, url)
    elif create and recorded != url:
        log.warning("study %s records its artifacts in %s; this worker writes to %s (readers need --artifacts for it)",
                    study.study_name, recorded, url)
    return store


# ---------------------------------------------------------------- the handle


class StudyHandle:
    """A study with the operations a sweep needs beyond ask and tell, addressed by trial id.

    Safe to share between threads as far as the storage is (every Optuna storage is): the heartbeat
    thread stamps while the worker scores."""

    def __init__(self, study: optuna.Study):
        self.study = study
        self._storage = study._storage

    @classmethod
    def create(cls, name: str, storage, sampler, pruner, directions) -> StudyHandle:
        """Create-or-load, retried: workers racing on an empty SQLite/PostgreSQL schema can collide once."""
        for attempt in range(5):
            try:
                return cls(optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                               directions=directions, load_if_exists=True))
            except Exception as err:  # noqa: BLE001 - integrity/operational errors of the race
                if attempt == 4:
                    raise
                log.info("study creation raced (%s); retrying", type(err).__name__)
                time.sleep(0.5 + attempt)
        raise AssertionError("unreachable")

    @property
    def study_id(self) -> int:
        return self.study._study_id

    @staticmethod
    def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
        return trial._trial_id

    def trials(self, states=None) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)

    def frozen(self, trial_id: int) -> optuna.trial.FrozenTrial:
        return self._storage.get_trial(trial_id)

    def claim(self, attrs: dict) -> int:
        """A new RUNNING trial with `attrs` and no params (not asked of the sampler); returns its id."""
        template = optuna.trial.create_trial(state=S.RUNNING, params={}, distributions={}, user_attrs=attrs)
        return self._storage.create_new_trial(self.study_id, template_trial=template)

    def set_attrs(self, trial_id: int, attrs: dict) -> None:
        for key, value in attrs.items():
            self._storage.set_trial_user_attr(trial_id, key, value)

    def finish(self, trial_id: int, state: optuna.trial.TrialState, values: list[float] | None = None) -> None:
        self._storage.set_trial_state_values(trial_id, state, values)

    def report(self, trial_id: int, step: int, value: float) -> None:
        """An intermediate value, as `trial.report` would write it (for the pruner)."""
        self._storage.set_trial_intermediate_value(trial_id, step, value)

    def stamp(self, trial_id: int, key: str, value) -> None:
        """A system attribute (the harness's own bookkeeping, e.g. heartbeats), not shown as a user attribute."""
        self._storage.set_trial_system_attr(trial_id, key, value)


    def upload_outputs(self, artifacts: ArtifactStore, trial_id: int, out_dir: Path, adapter: Path | None) -> dict[str, str]:
        """`upload_outputs` owned by the trial (as Optuna lists artifacts)."""
        return upload_outputs(artifacts, out_dir, adapter, self.frozen(trial_id), self._storage)


def upload_outputs(artifacts: ArtifactStore, out_dir: Path, adapter: Path | None, owner, storage=None) -> dict[str, str]:
    """Upload what a candidate's scoring (and training) made; returns {kind: artifact id} for
    `TrialAttr.ARTIFACTS`. `owner`: a study or trial (with `storage` for a FrozenTrial)."""
    files = {"items": Path(out_dir) / ITEMS, "scores": Path(out_dir) / SCORES}
    if adapter is not None:
        files["train"] = Path(adapter) / TRAIN_RECORD
    ids = {kind: artifacts.upload_file(path, owner, storage) for kind, path in files.items() if path.is_file()}
    if adapter is not None and Path(adapter).is_dir():
        ids["adapter"] = artifacts.upload_folder(Path(adapter), owner, storage)
    return ids
