"""The built wheel works on its own: it carries every shipped suite file, and installed into a fresh
environment (the project's dependencies visible, the checkout not) it validates and scores `--suite mmlu`."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from conftest import REPO


def _shipped_files() -> set[str]:
    tracked = subprocess.run(["git", "ls-files", "suites"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return {"harness/score/suites/shipped/" + f.removeprefix("suites/") for f in tracked}


def test_the_wheel_holds_every_shipped_suite_and_runs_from_a_fresh_environment(tmp_path, tiny_model, harness_home):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(dist.glob("harness-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _shipped_files() - names
    assert not missing and "harness/score/suites/shipped/mmlu.yaml" in names, sorted(missing)

    # A fresh environment: the wheel installed, the dependencies of this one visible through a .pth
    # (its own .pth files, the editable install of the checkout among them, are not processed).
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    site = Path(subprocess.run([str(fresh / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(fresh / "bin" / "python"), "install", "-q", "--no-deps",
                                "--no-index", str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]

    work = tmp_path / "elsewhere"  # no suites/ here, no checkout on the path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(fresh / "bin" / "python"), "-c", "import harness.score.suites as s; print(s.SHIPPED)"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), f"the shipped suites came from {where}, not the installed wheel"
    validate = subprocess.run([str(fresh / "bin" / "harness"), "validate", *[str(Path(where) / n) for n in ("mmlu.yaml", "humaneval.yaml")],
                               str(Path(where) / "extraction" / "suite.yaml")], capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert validate.returncode == 0, validate.stderr[-2000:]
    scored = subprocess.run([str(fresh / "bin" / "harness"), "eval", "--base", str(tiny_model), "--suite", "mmlu", "--limit", "2"],
                            capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert (work / "runs" / "eval" / "items.parquet").is_file() and "mmlu" in scored.stdout
