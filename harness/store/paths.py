"""Every place the harness keeps a file, and every file name: the one module that builds those paths.

Relative to the working directory (so one machine works out of the box; a study's readers elsewhere
find its files through its storage and artifact store, never through these folders):

    runs/eval/                       `harness eval`'s default output: items.parquet, scores.json
    runs/<study>/journal.log         the Optuna study (default storage; sqlite/postgresql URLs instead)
    runs/<study>/artifacts/          the study's artifact store (default; `--artifacts DIR` instead)
    runs/<study>/base/               trial 0 (the base model): the worker's scratch
    runs/<study>/trial-<n>/          adapter/ (peft files + train.json), items.parquet, scores.json
    runs/<study>/trial-<n>/n<rows>/  multi-fidelity: one such folder per rung climbed
    runs/<study>/worker-<i>.log      extra local workers' output (`--workers N`)
    runs/<study>/neptune/            neptune-scale offline run files
    runs/mlflow.db, runs/mlartifacts/<experiment>/   MLflow (unless MLFLOW_TRACKING_URI is set)
    reports/<name>/                  index.html, leaderboard.md/.csv, results.parquet, best.json, card.json,
                                     champion.json and champion-results/ (after `gate --promote`)
    reports/index.html               every study reported here, one line each (from their card.json)

Under HARNESS_HOME (default ~/.cache/harness), caches keyed by content, valid on any working directory:

    models/<gguf>-<hash>/            base models converted from GGUF
    cache/responses.sqlite           the response cache
    suite_data/<key>/<split>.jsonl   suites as lm-eval reads them
    artifacts/<id>/                  artifacts fetched from a study's store (immutable)
    parity/<base>/                   the random adapters of the hf-vs-vllm parity check
    heldout-loss/<key>.json, hashes.json, humaneval-timeouts.json, hf/, lm_eval_cache/

This module imports nothing of the harness: every other module, the runtime's included, may use it.
"""

from __future__ import annotations

import os
from pathlib import Path

RUNS = Path("runs")
REPORTS = Path("reports")
EVAL_DIR = RUNS / "eval"

# The files of a scores directory (harness eval's output, a trial's scratch, a champion's copy).
ITEMS = "items.parquet"
SCORES = "scores.json"
# Inside an adapter's folder.
TRAIN_RECORD = "train.json"  # what trained it
MERGE_RECORD = "merge.json"  # a merged adapter's parents, method and weights
# A report folder.
BEST = "best.json"
CARD = "card.json"  # the report in one line, for the index of every study (reports/index.html)
CHAMPION = "champion.json"
REPORT_HTML = "index.html"
LEADERBOARD_MD = "leaderboard.md"
LEADERBOARD_CSV = "leaderboard.csv"
RESULTS = "results.parquet"


# ---------------------------------------------------------------- a sweep study's folders


def study_dir(study: str) -> Path:
    return RUNS / study


def trial_dir(study: str, number: int) -> Path:
    return study_dir(study) / f"trial-{number}"


def rung_dir(study: str, number: int, n_samples: int) -> Path:
    return trial_dir(study, number) / f"n{n_samples}"


def base_dir(study: str) -> Path:
    return study_dir(study) / "base"


def adapter_dir(scratch: Path) -> Path:
    """The adapter a trial trains (or merges) inside its scratch folder."""
    return Path(scratch) / "adapter"


def worker_log(study: str, index: int) -> Path:
    return study_dir(study) / f"worker-{index}.log"


def neptune_dir(study: str) -> Path:
    return study_dir(study) / "neptune"


def journal_file(study: str) -> Path:
    return study_dir(study) / "journal.log"


def default_artifacts(study: str) -> str:
    """Relative to the working directory, like the default journal: one machine works out of the box."""
    return str(study_dir(study) / "artifacts")


# ---------------------------------------------------------------- reports and the champion


def report_dir(name: str) -> Path:
    return REPORTS / name


def best_file(study: str) -> Path:
    return report_dir(study) / BEST


def champion_file(name: str) -> Path:
    return report_dir(name) / CHAMPION


def champion_results_dir(name: str) -> Path:
    """The champion's own copy of its items: an eval directory is overwritten by the next eval."""
    return report_dir(name) / "champion-results"


# ---------------------------------------------------------------- MLflow


def mlflow_uri() -> str:
    """MLFLOW_TRACKING_URI, else the embedded SQLite store runs/mlflow.db."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(RUNS / 'mlflow.db').resolve()}"


def mlflow_artifacts(experiment: str) -> str:
    """Artifact location of an MLflow experiment we create (else artifacts land in ./mlruns)."""
    return (RUNS / "mlartifacts" / experiment).resolve().as_uri()


# ---------------------------------------------------------------- HARNESS_HOME: caches keyed by content


def harness_home() -> Path:
    home = Path(os.environ.get("HARNESS_HOME", Path.home() / ".cache" / "harness")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def converted_model_dir(name: str) -> Path:
    return harness_home() / "models" / name


def response_cache() -> Path:
    return harness_home() / "cache" / "responses.sqlite"


def suite_split_file(key: str, split: str) -> Path:
    return harness_home() / "suite_data" / key / f"{split}.jsonl"


def artifact_cache(artifact_id: str) -> Path:
    return harness_home() / "artifacts" / artifact_id


def parity_adapters_dir(base_identity: str) -> Path:
    return harness_home() / "parity" / base_identity[:20]


def heldout_loss_file(key: str) -> Path:
    return harness_home() / "heldout-loss" / f"{key[:32]}.json"


def hash_memo() -> Path:
    return harness_home() / "hashes.json"


def humaneval_timeouts() -> Path:
    return harness_home() / "humaneval-timeouts.json"


def hf_home() -> Path:
    return harness_home() / "hf"


def lm_eval_cache() -> Path:
    return harness_home() / "lm_eval_cache"
