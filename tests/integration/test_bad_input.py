"""Bad input, as a new user writes it, to every command: exit 2, one line naming the file (and the
field), no traceback, nothing loaded.

"Nothing loaded" is asserted, not timed (conftest.run_cli_noting_imports): a command that rejects its
input before any heavy work never imports transformers' modeling code, peft, trl or vllm.
"""

import json
import subprocess
import sys
from pathlib import Path

import cli_options
import numpy as np
import pytest
from conftest import REPO, make_study, run_cli_noting_imports

TRAIN = REPO / "suites/extraction/train.jsonl"
EXTRACTION = REPO / "suites/extraction"

SWEEP = """study: s
train: {{data: {data}{train}}}
space:
  lora_r: {lora_r}
  learning_rate: {learning_rate}
  n_samples: {n_samples}
suites: [{{suite: {suite}}}]
{extra}"""


def sweep(tmp: Path, train="", lora_r="{type: categorical, choices: [4]}", learning_rate="{type: categorical, choices: [1.0e-3]}",
          n_samples="{type: categorical, choices: [8]}", suite=None, data=TRAIN, extra="") -> Path:
    path = tmp / "sweep.yaml"
    path.write_text(SWEEP.format(data=data, train=train, lora_r=lora_r, learning_rate=learning_rate, n_samples=n_samples,
                                 suite=suite or EXTRACTION / "suite.yaml", extra=extra))
    return path


def a_study(work: Path) -> str:
    """A real study `s1` in the directory the command runs in (work's parent): the base model's trial."""
    make_study(work.parent, "s1", {"base": ({}, {"extraction": {"field_f1": np.zeros(4)}})})
    return "s1"


def suite(tmp: Path, edit=lambda text: text, rows=None, files: dict[str, str] | None = None) -> Path:
    """A copy of the extraction suite (4 dev rows) with `edit` applied to its YAML and `files` beside it."""
    folder = tmp / "suite"
    folder.mkdir()
    lines = rows if rows is not None else (EXTRACTION / "dev.jsonl").read_text().splitlines()[:4]
    (folder / "dev.jsonl").write_text("\n".join(lines) + "\n")
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    path = folder / "suite.yaml"
    path.write_text(edit((EXTRACTION / "suite.yaml").read_text()))
    return path


def metric(spec: str):
    """The suite's second metric replaced by `spec` (the headline stays field_f1)."""
    return lambda text: text.replace("  - name: json_exact_match\n    as: exact_match", f"  - {spec}")


def results(tmp: Path, scores: str = '{"scores": []}') -> Path:
    """An eval output directory whose items.parquet is not parquet."""
    folder = tmp / "results"
    folder.mkdir()
    (folder / "items.parquet").write_bytes(b"PAR1 not really parquet")
    (folder / "scores.json").write_text(scores)
    return folder


def broken_adapter(tmp: Path) -> Path:
    folder = tmp / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{not json")
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return folder


def adapter_of_rank(tmp: Path, rank: int) -> Path:
    """A directory that passes for a peft adapter of `rank` up to the weights (never loaded: the input is refused first)."""
    folder = tmp / f"r{rank}"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": rank, "target_modules": ["q_proj"]}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return folder


def items_csv(tmp: Path, rows: str) -> Path:
    return file_with(tmp, "items.csv", ("n_samples,item_id,score\n" + rows).encode())


def file_with(tmp: Path, name: str, content: bytes) -> Path:
    path = tmp / name
    path.write_bytes(content)
    return path


def gate_rules(tmp: Path, text="rules:\n  - {metric: extraction.field_f1, threshold: 0.5, max_regression: 0.1}\n") -> Path:
    return file_with(tmp, "gates.yaml", text.encode())


GATES = REPO / "suites/gates.yaml"
FIRST_ROWS = (EXTRACTION / "dev.jsonl").read_text().splitlines()[:2]

# (id, command, args(tmp, tiny model) -> the rest of the command line, substrings the one error line holds)
CASES = [
    # validate: sweeps
    ("sweep space value breaks lora_r's rule", "validate", lambda t, m: [sweep(t, lora_r="{type: categorical, choices: [0]}")],
     ["sweep.yaml", "space.lora_r", "greater than 0"]),
    ("sweep learning rate is text", "validate", lambda t, m: [sweep(t, learning_rate='{type: categorical, choices: ["fast"]}')],
     ["sweep.yaml", "space.learning_rate", "'fast'"]),
    ("sweep negative n_samples", "validate", lambda t, m: [sweep(t, n_samples="{type: int, low: -5, high: 8}")],
     ["sweep.yaml", "space.n_samples", "-5"]),
    ("sweep low above high", "validate", lambda t, m: [sweep(t, lora_r="{type: int, low: 16, high: 4}")],
     ["sweep.yaml", "space.lora_r", "low 16 > high 4"]),
    ("sweep typo in a key", "validate", lambda t, m: [sweep(t, extra="samplr: {name: tpe}\n")], ["sweep.yaml", "samplr", "unknown field"]),
    ("sweep unknown storage scheme", "validate", lambda t, m: [sweep(t, extra="storage: redis://localhost/0\n")],
     ["sweep.yaml", "storage", "redis://"]),
    ("sweep early stopping with multi-fidelity", "validate",
     lambda t, m: [sweep(t, extra="scoring: {early_stop: sequential}\nmulti_fidelity: {enabled: true, min_samples: 4}\n")],
     ["sweep.yaml", "scoring.early_stop", "multi_fidelity"]),
    ("sweep early stopping alpha out of range", "validate", lambda t, m: [sweep(t, extra="scoring: {early_stop: sequential, alpha: 1.5}\n")],
     ["sweep.yaml", "scoring.alpha", "less than 0.5"]),
    ("sweep training data missing", "validate", lambda t, m: [sweep(t, data=t / "nope.jsonl")], ["nope.jsonl", "no such data file"]),
    ("sweep wants more rows than the data has", "validate", lambda t, m: [sweep(t, n_samples="{type: categorical, choices: [5000]}")],
     ["train.jsonl", "n_samples=5000"]),
    ("sweep lora_alpha not positive", "validate", lambda t, m: [sweep(t, train=", lora_alpha: -1")], ["sweep.yaml", "train.lora_alpha"]),
    ("sweep objective names a metric the suite lacks", "validate",
     lambda t, m: [sweep(t, extra=f"objectives: [{{suite: {EXTRACTION / 'suite.yaml'}, metric: f2}}]\n")],
     ["sweep.yaml", "objectives[0]", "'f2'"]),
    # validate: suites and gate rules
    ("suite placeholder is not a field", "validate", lambda t, m: [suite(t, edit=lambda s: s.replace("{text}", "{txt}"))],
     ["suite.yaml", "prompt.user", "{txt}", "dev.jsonl"]),
    ("suite rows lack the target's field", "validate", lambda t, m: [suite(t, rows=['{"id": "a", "text": "x"}'])],
     ["suite.yaml", "target", "dev.jsonl"]),
    ("suite metric module missing", "validate", lambda t, m: [suite(t, edit=metric("{function: 'nosuchmod:f'}"))],
     ["nosuchmod:f", "cannot import"]),
    ("suite metric function's signature", "validate",
     lambda t, m: [suite(t, edit=metric("{function: 'm.py:f'}"), files={"m.py": "def f(x):\n    return 1.0\n"})],
     ["m.py:f", "(prediction, reference)"]),
    ("suite metric returns text", "validate",
     lambda t, m: [suite(t, edit=metric("{function: 'm.py:f'}"), files={"m.py": "def f(p, r):\n    return 'yes'\n"})],
     ["metric f", "returned str"]),
    ("suite data file missing", "validate", lambda t, m: [suite(t, edit=lambda s: s.replace("dev.jsonl", "gone.jsonl"))],
     ["gone.jsonl", "no such data file"]),
    ("suite regex does not compile", "validate", lambda t, m: [suite(t, edit=metric("{name: regex, pattern: '(['}"))],
     ["suite.yaml", "metrics.1", "regular expression"]),
    ("suite template has a lone brace", "validate", lambda t, m: [suite(t, edit=lambda s: s.replace("{text}", "{text} {"))],
     ["suite.yaml", "prompt.user", "{{"]),
    ("suite data line is truncated JSON", "validate", lambda t, m: [suite(t, rows=[*FIRST_ROWS, '{"id": "x", "te'])],
     ["dev.jsonl", "line 3", "malformed JSON"]),
    ("YAML file is binary", "validate", lambda t, m: [file_with(t, "bin.yaml", b"\xff\xfe\x00\x01rules")], ["bin.yaml", "UTF-8"]),
    ("YAML file is empty", "validate", lambda t, m: [file_with(t, "empty.yaml", b"")], ["empty.yaml", "mapping"]),
    ("gate rule with threshold and regression", "validate", lambda t, m: [gate_rules(t)], ["gates.yaml", "rules.0", "exactly one"]),
    # eval
    ("eval limit 0", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--limit", "0", "--out", t / "o"], ["--limit 0"]),
    ("eval limit -1", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--limit", "-1", "--out", t / "o"], ["--limit -1"]),
    ("eval unknown suite", "eval", lambda t, m: ["--base", m, "--suite", "nosuch", "--out", t / "o"], ["--suite nosuch"]),
    ("eval adapter without a name", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--adapter", t], ["--adapter", "NAME=PATH"]),
    ("eval adapter directory missing", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--adapter", f"a={t / 'gone'}", "--out", t / "o"],
     ["--adapter a=", "gone", "adapter_config.json"]),
    ("eval adapter config is not JSON", "eval",
     lambda t, m: ["--base", m, "--suite", "mmlu", "--adapter", f"a={broken_adapter(t)}", "--out", t / "o"],
     ["adapter_config.json", "not valid JSON"]),
    ("eval out is a file", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--out", file_with(t, "f", b"x")], ["--out", "not a directory"]),
    ("eval out holds a corrupt items.parquet", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--limit", "2", "--out", results(t)],
     ["items.parquet", "not a readable"]),
    ("eval base .gguf that is not GGUF", "eval",
     lambda t, m: ["--base", file_with(t, "m.gguf", b"not a model"), "--suite", "mmlu", "--out", t / "o"], ["m.gguf", "not a GGUF"]),
    ("eval base directory with a broken config.json", "eval",
     lambda t, m: ["--base", file_with(t, "config.json", b"{").parent, "--suite", "mmlu", "--out", t / "o"], ["config.json", "not valid JSON"]),
    ("eval dtype float16", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--dtype", "float16"], ["--dtype float16"]),
    ("eval unknown backend", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--backend", "tpu"], ["--backend tpu"]),
    # train
    ("train data missing", "train", lambda t, m: ["--base", m, "--data", t / "none.jsonl", "--n-samples", "4", "--out", t / "a"],
     ["none.jsonl", "no such data file"]),
    ("train data is binary", "train",
     lambda t, m: ["--base", m, "--data", file_with(t, "d.jsonl", b"\x89PNG\r\n\x1a\n\xff"), "--n-samples", "4", "--out", t / "a"],
     ["d.jsonl", "UTF-8"]),
    ("train zero samples", "train", lambda t, m: ["--base", m, "--data", TRAIN, "--n-samples", "0", "--out", t / "a"],
     ["--n-samples", "greater than 0"]),
    ("train rank zero", "train", lambda t, m: ["--base", m, "--data", TRAIN, "--n-samples", "4", "--lora-r", "0", "--out", t / "a"],
     ["--lora-r", "greater than 0"]),
    ("train out exists", "train", lambda t, m: ["--base", m, "--data", TRAIN, "--n-samples", "4", "--out", t], ["--out", "already exists"]),
    ("train qlora without a GPU", "train", lambda t, m: ["--base", m, "--data", TRAIN, "--n-samples", "4", "--qlora", "--out", t / "a"],
     ["--qlora", "CUDA GPU"]),
    ("train dtype unknown", "train", lambda t, m: ["--base", m, "--data", TRAIN, "--n-samples", "4", "--dtype", "fp8", "--out", t / "a"],
     ["--dtype", "fp8"]),
    # gate
    ("gate results directory without results", "gate", lambda t, m: ["--rules", GATES, "--results", t], ["--results", "items.parquet"]),
    ("gate scores.json truncated", "gate", lambda t, m: ["--rules", GATES, "--results", results(t, scores='{"scores": [')],
     ["scores.json", "not valid JSON"]),
    ("gate rules file missing", "gate", lambda t, m: ["--rules", t / "none.yaml", "--results", t], ["none.yaml", "no such"]),
    ("gate neither results nor study", "gate", lambda t, m: ["--rules", GATES], ["--results", "--study"]),
    # report, leaderboard, sweep
    ("report unknown study", "report", lambda t, m: ["nosuchstudy"], ["nosuchstudy", "journal.log"]),
    ("leaderboard unknown study", "leaderboard", lambda t, m: ["nosuchstudy"], ["nosuchstudy"]),
    ("report target metric the study lacks", "report", lambda t, m: [a_study(t), "--target", "extraction.nosuch=0.8"],
     ["--target extraction.nosuch=0.8", "no such metric", "extraction.field_f1"]),
    ("report artifact store not here", "report", lambda t, m: [a_study(t), "--artifacts", t / "nowhere"],
     ["--artifacts", "nowhere", "no such directory"]),
    ("forecast artifact store is gcs", "forecast", lambda t, m: [a_study(t), "--metric", "extraction.field_f1", "--artifacts", "gs://b/p"],
     ["--artifacts gs://b/p", "not supported"]),
    ("dashboard unknown study", "dashboard", lambda t, m: ["nosuchstudy"], ["nosuchstudy", "journal.log"]),
    ("eval unknown lm-eval task", "eval", lambda t, m: ["--base", m, "--suite", "lm-eval:no_such_task_at_all"],
     ["lm-eval:no_such_task_at_all", "not a task or group lm-eval knows"]),
    ("eval include-path without an lm-eval suite", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--include-path", t],
     ["--include-path", "lm-eval"]),
    ("eval include-path is not a directory", "eval", lambda t, m: ["--base", m, "--suite", "lm-eval:x", "--include-path", t / "none"],
     ["include_path", "none", "no such directory"]),
    ("sweep artifact store with keys in its URL", "sweep", lambda t, m: [sweep(t), "--artifacts", "s3://AKIAX:secret@bucket/prefix"],
     ["--artifacts s3://***@bucket/prefix", "credentials and endpoints do not go in the URL"]),
    ("sweep file's artifact store is not a bucket", "sweep", lambda t, m: [sweep(t, extra="artifacts: s3://Bad_Bucket/prefix\n")],
     ["sweep.yaml", "artifacts", "not a bucket name"]),
    ("sweep zero workers", "sweep", lambda t, m: [sweep(t), "--workers", "0"], ["--workers 0"]),
    ("sweep timeout of no time", "sweep", lambda t, m: [sweep(t), "--timeout", "-5"], ["--timeout -5", "more than 0 seconds"]),
    ("sweep unknown tracker", "sweep", lambda t, m: [sweep(t), "--tracker", "wandb"], ["--tracker wandb"]),
    ("sweep file names a missing suite", "sweep", lambda t, m: [sweep(t, suite=t / "none.yaml")], ["none.yaml", "no such file"]),
    ("sweep file misspells a suite", "sweep", lambda t, m: [sweep(t, suite="extractoin")],
     ["sweep.yaml: suites[0].suite: extractoin", "unknown suite"]),
    ("sweep file's base is not there", "sweep", lambda t, m: [sweep(t, extra="base: /nonexistent.gguf\n")],
     ["sweep.yaml: base: /nonexistent.gguf", "no such GGUF"]),
    ("sweep suite weight below 0", "sweep", lambda t, m: [sweep(t, suite="extraction, weight: -1")], ["sweep.yaml", "suites.0.weight", "-1"]),
    ("sweep storage unreachable (password hidden)", "sweep",
     lambda t, m: [sweep(t), "--storage", "postgresql://harness:s3cret@127.0.0.1:9/db"], ["--storage", "harness:***@127.0.0.1", "cannot open"]),
    # humaneval, serve, models
    ("humaneval samples lack a field", "humaneval", lambda t, m: ["grade", file_with(t, "s.jsonl", b'{"task_id": "HumanEval/0"}\n')],
     ["s.jsonl", "line 1", "completion"]),
    ("humaneval unknown task", "humaneval",
     lambda t, m: ["grade", file_with(t, "s.jsonl", b'{"task_id": "HumanEval/999", "completion": "x"}\n')], ["HumanEval/999"]),
    ("serve adapter without a path", "serve", lambda t, m: ["--base", m, "--adapter", "a="], ["--adapter a=", "NAME=PATH"]),
    ("serve adapter directory holds no adapter", "serve", lambda t, m: ["--base", m, "--adapter", f"a={t}"],
     ["--adapter a=", "no adapter_config.json"]),
    ("serve adapter rank above --max-lora-rank", "serve", lambda t, m: ["--base", m, "--adapter", f"a={adapter_of_rank(t, 128)}"],
     ["--adapter a=", "rank 128", "--max-lora-rank 64"]),
    ("serve adapter rank above an explicit --max-lora-rank", "serve",
     lambda t, m: ["--base", m, "--max-lora-rank", "8", "--adapter", f"a={adapter_of_rank(t, 16)}"], ["rank 16", "--max-lora-rank 8"]),
    ("serve max-lora-rank of 0", "serve", lambda t, m: ["--base", m, "--max-lora-rank", "0"], ["--max-lora-rank 0", "at least 1"]),
    ("serve dtype float16", "serve", lambda t, m: ["--base", m, "--dtype", "float16"], ["--dtype float16"]),
    ("serve port out of range", "serve", lambda t, m: ["--base", m, "--port", "70000"], ["--port 70000"]),
    # merge, doctor
    ("merge unknown method", "merge", lambda t, m: ["--base", m, "--adapter", f"a={adapter_of_rank(t, 8)}", "--method", "average",
                                                    "--out", t / "o"], ["--method average", "expected one of"]),
    ("merge weights are not numbers", "merge", lambda t, m: ["--base", m, "--adapter", f"a={adapter_of_rank(t, 8)}", "--method", "linear",
                                                             "--weights", "half", "--out", t / "o"], ["--weights half"]),
    ("merge density above 1", "merge", lambda t, m: ["--base", m, "--adapter", f"a={adapter_of_rank(t, 8)}", "--adapter", f"b={t / 'r8'}",
                                                     "--method", "ties", "--density", "1.5", "--out", t / "o"], ["--density 1.5"]),
    ("merge one adapter by svd", "merge", lambda t, m: ["--base", m, "--adapter", f"a={adapter_of_rank(t, 8)}", "--method", "svd",
                                                        "--svd-rank", "4", "--out", t / "o"], ["--method svd", "two or more"]),
    ("merge adapter directory missing", "merge", lambda t, m: ["--base", m, "--adapter", f"a={t / 'gone'}", "--method", "linear",
                                                               "--out", t / "o"], ["--adapter a=", "gone"]),
    ("doctor adapter without --parity", "doctor", lambda t, m: ["--adapter", f"a={t}"], ["--adapter", "only with --parity"]),
    ("doctor parity adapter holds no adapter", "doctor", lambda t, m: ["--parity", "--base", m, "--adapter", f"a={t}"],
     ["--adapter a=", "no adapter_config.json"]),
    # forecast --items
    ("forecast score outside [0, 1]", "forecast",
     lambda t, m: ["--items", items_csv(t, "16,a,0.5\n16,b,5.0\n"), "--metric", "x.f1"], ["items.csv", "score 5", "outside [0, 1]"]),
    ("forecast duplicate item at one size", "forecast",
     lambda t, m: ["--items", items_csv(t, "16,a,0.5\n16,a,0.7\n"), "--metric", "x.f1"], ["items.csv", "item_id 'a'", "n_samples 16"]),
    ("forecast score left empty", "forecast",
     lambda t, m: ["--items", items_csv(t, "16,a,0.5\n16,b,\n"), "--metric", "x.f1"], ["items.csv", "score in row 3 is empty"]),
    ("forecast group of a file without groups", "forecast",
     lambda t, m: ["--items", items_csv(t, "16,a,0.5\n16,b,0.2\n"), "--metric", "x.f1", "--group", "lora_r=16"],
     ["--group lora_r=16", "no group column"]),
    ("report out cannot be created", "report",
     lambda t, m: ["--items", file_with(t, "it.csv", b"candidate,suite,item_id,score\nbase,qa,1,0.5\n"), "--out", "/proc/report"],
     ["--out /proc/report", "cannot create"]),
    ("leaderboard unknown format before the study", "leaderboard", lambda t, m: ["nosuchstudy", "--format", "xml"], ["--format xml"]),
    ("models prepare a file that is not GGUF", "models", lambda t, m: ["prepare", file_with(t, "x.gguf", b"GGML")], ["x.gguf", "not a GGUF"]),
    ("ui with no MLflow store here", "ui", lambda t, m: [], ["no MLflow store at", "runs/mlflow.db"]),
    ("report --all with no study here", "report", lambda t, m: ["--all"], ["--all", "no study here"]),
    ("report --all with a study named", "report", lambda t, m: ["--all", "quickstart"], ["--all", "give no STUDY"]),
    ("eval lm-eval output is a file", "eval", lambda t, m: ["--base", m, "--suite", "mmlu", "--lm-eval-output", file_with(t, "o.txt", b"x")],
     ["--lm-eval-output", "o.txt", "exists and is not a directory"]),
]


@pytest.mark.parametrize(("case", "command", "argv", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_loads_nothing(case, command, argv, expect, tiny_model, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    args = [command, *map(str, argv(work, tiny_model))]
    proc, loaded = run_cli_noting_imports(*args, cwd=tmp_path)
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), proc.stderr
    for text in expect:
        assert text in errors[0], f"{text!r} not in {errors[0]!r}"
    assert loaded == [], f"loaded {loaded} before rejecting the input"


def test_the_table_covers_every_command():
    """Every command `harness --help` lists (groups by their first word) has at least one case."""
    commands = {command for _, command, _, _ in CASES}
    assert {path[0] for path in cli_options.options()} <= commands
    assert len(CASES) >= 30


def test_gate_json_is_strict_even_with_nan_results(tmp_path):
    """A NaN result fails the gate (fail closed) and its verdict file is still standard JSON."""
    import pandas as pd

    folder = tmp_path / "r"
    folder.mkdir()
    pd.DataFrame([{"candidate": c, "candidate_hash": c, "suite": "extraction", "suite_version": "v", "item_id": str(i), "prediction": "",
                   "reference": "", "score": float("nan"), "metrics": '{"field_f1": NaN}', "tokens": 1, "extra": "{}", "backend": "hf",
                   "dtype": "float32"} for c in ("base", "a") for i in range(3)]).to_parquet(folder / "items.parquet")
    (folder / "scores.json").write_text('{"scores": []}')
    rules = gate_rules(tmp_path, "rules:\n  - {metric: extraction.field_f1, threshold: 0.5}\n")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "gate", "--rules", str(rules), "--results", str(folder), "--candidate", "a",
                           "--json", str(tmp_path / "v.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    verdict = json.loads((tmp_path / "v.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert verdict["passed"] is False and verdict["rules"][0]["value"] is None
