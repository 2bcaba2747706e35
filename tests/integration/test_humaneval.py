"""HumanEval grading and the sandbox: real problems, real programs, hostile ones included."""

import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from harness.score import humaneval_grading as humaneval
from harness.score.sandbox import Limits, run_program

# Both sandboxes, always: the bubblewrap cases show as skip lines where bwrap is missing (and fail the run under CI=true).
KINDS = ["rlimit-only", pytest.param("bubblewrap", marks=pytest.mark.needs("bubblewrap"))]
# Without bubblewrap nothing runs unless asked for: tests that are not about the sandbox ask for it.
OPT_IN = [] if shutil.which("bwrap") else ["--sandbox", "rlimit-only"]
SECRET = "hf_TOPSECRET_abc123"


def test_canonical_solutions_pass_and_wrong_ones_fail(tmp_path):
    rows = humaneval.humaneval_rows()
    assert len(rows) == 164
    samples = [{"task_id": r["task_id"], "completion": r["canonical_solution"]} for r in rows]
    samples += [{"task_id": r["task_id"], "completion": "    return None\n"} for r in rows[:20]]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    proc = run_cli("humaneval", "grade", str(path), "--out", str(tmp_path / "results.jsonl"), *OPT_IN)
    assert proc.returncode == 0, proc.stderr
    graded = [json.loads(l) for l in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sum(g["passed"] for g in graded[:164]) == 164
    assert not any(g["passed"] for g in graded[164:])


HOSTILE = {
    "delete outside": "import shutil, os\nshutil.rmtree({victim!r}, ignore_errors=True)\nopen({victim!r} + '/kept.txt').read()\n",
    "write home": "import os\nopen(os.path.expanduser('~root') + '/pwned.txt', 'w').write('x')\nopen('/root/pwned.txt', 'w').write('x')\n",
    "fork bomb": "import os\nwhile True:\n    os.fork()\n",
    "infinite loop": "while True:\n    pass\n",
    "allocate 20 GB": "x = bytearray(20 * 1024 ** 3)\n",
    "network": "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'escaped')\n",
    "kill parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "flood stdout": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
    "early exit 0": "import sys\nsys.exit(0)\nassert False\n",
    "os._exit 0": "import os\nos._exit(0)\n",
    "segfault": "import ctypes\nctypes.string_at(0)\n",
    "read secrets": "import os\nprint(dict(os.environ))\nprint(open('/proc/1/environ').read())\nassert {secret!r} not in str(os.environ)\nraise SystemExit(str(os.environ))\n",
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_programs_are_contained(name, kind, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    victim = tmp_path / "victim"
    victim.mkdir()
    os.chmod(tmp_path, 0o755)
    (victim / "kept.txt").write_text("precious")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    received = []

    def accept():
        try:
            conn, _ = server.accept()
            received.append(conn.recv(100))
        except OSError:
            pass

    listener = threading.Thread(target=accept)
    listener.start()
    source = HOSTILE[name].format(victim=str(victim), port=server.getsockname()[1], secret=SECRET)
    outcome = run_program(source, Limits(timeout_s=5, memory_mb=1024), kind)
    listener.join()
    server.close()

    assert not outcome.passed, (name, outcome)
    assert SECRET not in outcome.detail
    assert (victim / "kept.txt").read_text() == "precious"
    assert not Path("/root/pwned.txt").exists()
    assert received == [], "the program reached the network"
    # The harness process is alive and can still run a good program.
    assert run_program("assert 1 + 1 == 2", kind=kind).passed


def test_humaneval_suite_runs_end_to_end_through_eval(tiny_model, tmp_path, harness_home):
    out = tmp_path / "out"
    suite = tmp_path / "humaneval.yaml"
    suite.write_text((REPO / "suites/humaneval.yaml").read_text() + ("" if shutil.which("bwrap") else "sandbox: rlimit-only\n"))
    proc = run_cli("eval", "--base", str(tiny_model), "--suite", str(suite), "--limit", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    items = pd.read_parquet(out / "items.parquet")
    assert len(items) == 2 and set(items.suite) == {"humaneval"}
    extra = [json.loads(e) for e in items["extra"]]
    assert all(e["sandbox"] in ("bubblewrap", "rlimit-only") and len(e["results"]) == 1 for e in extra)
    assert all(json.loads(m)["pass@1"] == s for m, s in zip(items["metrics"], items["score"]))
    scores = json.loads((out / "scores.json").read_text())
    assert any(s["metric"] == "pass@1" and s["n"] == 2 for s in scores["scores"])


def test_without_bubblewrap_generated_code_runs_only_when_asked(tmp_path):
    """Fail closed: with no bwrap on PATH, grading and HumanEval suites stop with exit 2 (before any
    model), unless rlimit-only is asked for; what ran says which sandbox it ran in."""
    env = {"PATH": str(tmp_path)}  # an empty PATH: no bwrap to find
    samples = tmp_path / "s.jsonl"
    problem = humaneval.problems()["HumanEval/0"]
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": problem["canonical_solution"]}) + "\n")
    refused = run_cli("humaneval", "grade", str(samples), env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "bubblewrap" in refused.stderr and "--sandbox rlimit-only" in refused.stderr, refused.stderr
    asked = run_cli("humaneval", "grade", str(samples), "--sandbox", "rlimit-only", env=env)
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["sandbox"] == "rlimit-only" and json.loads(asked.stdout)["pass@1"] == 1.0
    suite = REPO / "suites/humaneval.yaml"
    proc = run_cli("validate", str(suite), env=env)
    assert proc.returncode == 2 and f"{suite}: sandbox" in proc.stderr, proc.stderr
    opted = tmp_path / "he.yaml"
    opted.write_text(suite.read_text() + "sandbox: rlimit-only\n")
    assert run_cli("validate", str(opted), env=env).returncode == 0


def test_chat_mode_grades_the_code_block_of_a_chat_answer(tmp_path):
    """A chat model answers with prose around a fenced, whole function: --mode chat grades the code
    block (it passes); --mode completion appends the raw text to the prompt (it cannot pass)."""
    problem = humaneval.problems()["HumanEval/0"]
    whole = problem["prompt"] + problem["canonical_solution"]
    answer = f"Here is the function you asked for:\n\n```python\n{whole}```\n\nIt compares every pair of numbers."
    samples = tmp_path / "chat.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": answer}) + "\n")
    graded = {mode: run_cli("humaneval", "grade", str(samples), "--mode", mode, *OPT_IN) for mode in ("chat", "completion")}
    assert all(p.returncode == 0 for p in graded.values()), [p.stderr[-1000:] for p in graded.values()]
    assert json.loads(graded["chat"].stdout)["pass@1"] == 1.0
    assert json.loads(graded["completion"].stdout)["pass@1"] == 0.0
