"""The suite's own guarantees: a missing component fails a CI run naming it (and is a skip line
elsewhere), and an option of `harness --help` that no test passes is found."""

import json
import os
import re
import subprocess
import sys

import pytest
from cli_options import unexercised
from conftest import REPO

XDIST = ["-n", "2", "--dist", "loadfile"]  # what `make test` runs with
NEEDY = ["tests/integration/test_report_browser.py", "tests/integration/test_humaneval.py", "tests/integration/test_across_machines.py"]


def nested_pytest(tmp_path, *args, ci: bool):
    """pytest in a child with an empty PATH: no bwrap, no chromium, no initdb/pg_ctl to find."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PATH": str(tmp_path)} | ({"CI": "true"} if ci else {})
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, *NEEDY], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("workers", [[], XDIST], ids=["one process", "xdist"])
def test_under_ci_a_missing_component_fails_the_run_naming_it(tmp_path, workers):
    # one process stops at collection; under xdist the controller stops the workers before any test
    proc = nested_pytest(tmp_path, *(workers or ["--collect-only"]), "-q", ci=True)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]  # a usage error, before any test ran
    lines = [line for line in proc.stderr.splitlines() if "missing component" in line]
    assert [line.split("missing component ")[1].split(":")[0] for line in lines] == ["bubblewrap", "chromium", "postgresql"], proc.stderr
    assert "12 test(s) need it" in lines[0] and "bwrap is not on PATH" in lines[0]
    assert "passed" not in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
    # --require-all is the same switch for anyone
    assert nested_pytest(tmp_path, *(workers or ["--collect-only"]), "-q", "--require-all", ci=False).returncode == 4


@pytest.mark.parametrize("workers", [[], XDIST], ids=["one process", "xdist"])
def test_elsewhere_each_test_that_needs_a_missing_component_is_a_skip_line(tmp_path, workers):
    proc = nested_pytest(tmp_path, *workers, "-q", "-rs", "-k", "(hostile and bubblewrap) or browser or two_machines", ci=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    skips = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert any("[12]" in line and "needs bubblewrap" in line for line in skips), skips
    assert any("needs chromium" in line for line in skips) and any("needs postgresql" in line for line in skips), skips
    skipped = re.search(r"(\d+) skipped", proc.stdout)  # every selected test (the browser, sandbox and two-machine ones) a skip
    assert skipped and int(skipped.group(1)) >= 15 and not re.search(r"\d+ (passed|failed|error)", proc.stdout), proc.stdout[-2000:]


def test_an_option_no_test_passed_is_named(tmp_path):
    log = tmp_path / "argv.jsonl"
    log.write_text("".join(json.dumps(argv) + "\n" for argv in (
        ["gate", "--rules", "r.yaml", "--junit=j.xml"],          # --opt=value counts
        ["eval", "--no-cache", "--base", "x"],                   # a flag
        ["humaneval", "grade", "s.jsonl", "--mode", "chat"],     # a subcommand of a group
    )))
    missing = unexercised(log)
    for passed in ("harness gate --rules", "harness gate --junit", "harness eval --no-cache", "harness humaneval grade --mode"):
        assert passed not in missing
    for untested in ("harness gate --promote", "harness eval --server", "harness humaneval grade --sandbox", "harness merge (never run)"):
        assert untested in missing
    assert "harness gate (never run)" not in missing and len(missing) > 50
