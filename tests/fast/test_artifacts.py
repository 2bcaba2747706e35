"""The artifact store: readers fetch every trial's outputs from it, from any directory; a missing
artifact is an error naming the trial, never a thinner report. And `harness dashboard` on a study."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pandas as pd
from conftest import free_port, run_cli

from harness.store import study as studies


def _ids(root, study: str) -> dict[str, dict]:
    loaded = optuna.load_study(study_name=study, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(root / f"runs/{study}/journal.log"))))
    return {studies.candidate_name(t): t.user_attrs["artifacts"] for t in loaded.get_trials()}


def test_readers_fetch_every_trial_from_the_store_and_a_missing_artifact_names_its_trial(study_root, harness_home, tmp_path):
    shared = tmp_path / "elsewhere" / "store"
    shutil.move(study_root / "runs/s1/artifacts", shared)
    for name in ("base", "trial-1", "trial-2"):  # the workers' scratch folders are gone: only the store has the files
        shutil.rmtree(study_root / "runs/s1" / name)
    proc = run_cli("report", "s1", cwd=study_root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("error:") == 1 and "runs/s1/artifacts" in proc.stderr and "--artifacts" in proc.stderr

    proc = run_cli("leaderboard", "s1", "--artifacts", str(shared), "--format", "csv", cwd=study_root)
    assert proc.returncode == 0, proc.stderr
    assert {"base", "trial-1", "trial-2"} == set(pd.read_csv(pd.io.common.StringIO(proc.stdout)).candidate)
    ids = _ids(study_root, "s1")
    assert set(ids["trial-1"]) == {"items", "scores", "adapter"}  # constructed: an adapter without train.json
    assert (harness_home / "artifacts" / ids["trial-1"]["items"] / "items.parquet").is_file(), "fetched into the cache by id"

    # Another machine (an empty cache) where trial 2's items never reached the store.
    shutil.rmtree(harness_home / "artifacts")
    (shared / ids["trial-2"]["items"]).unlink()
    for command in (["report", "s1"], ["forecast", "s1", "--metric", "extraction.field_f1"],
                    ["gate", "--rules", "rules.yaml", "--study", "s1", "--candidate", "trial-1"]):
        proc = run_cli(*command, "--artifacts", str(shared), cwd=study_root)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert proc.stderr.count("error:") == 1 and "trial 2 (trial-2)" in proc.stderr and "items" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (study_root / "reports/s1/best.json").exists(), "no report on a thinner study"


def test_leaderboard_reads_the_study_from_the_storage_given(study_root, tmp_path):
    """--storage: from a directory with no runs/ the study is read from a SQLite copy, and the board is
    the journal's own; without --storage there the study is not found (exit 2)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    url = f"sqlite:///{tmp_path / 'copy.db'}"
    journal = JournalStorage(JournalFileBackend(str(study_root / "runs/s1/journal.log")))
    optuna.copy_study(from_study_name="s1", from_storage=journal, to_storage=url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = ["--artifacts", str(study_root / "runs/s1/artifacts"), "--format", "csv"]
    copied = run_cli("leaderboard", "s1", "--storage", url, *store, cwd=elsewhere)
    own = run_cli("leaderboard", "s1", *store, cwd=study_root)
    assert copied.returncode == 0 and own.returncode == 0, copied.stderr + own.stderr
    assert copied.stdout == own.stdout and set(pd.read_csv(pd.io.common.StringIO(copied.stdout)).candidate) == {"base", "trial-1", "trial-2"}
    lost = run_cli("leaderboard", "s1", *store, cwd=elsewhere)
    assert lost.returncode == 2 and "s1" in lost.stderr and "Traceback" not in lost.stderr


def _studies_served(proc, url: str) -> list[dict]:
    """The dashboard's study list once it answers (within a minute)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/studies", timeout=2) as resp:
                return json.load(resp)["study_summaries"]
        except OSError:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.3)
    raise AssertionError(f"no dashboard at {url} within a minute")


def test_dashboard_serves_the_study_on_localhost(study_root):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "dashboard", "s1", "--port", str(port)], cwd=study_root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        studies = _studies_served(proc, f"http://127.0.0.1:{port}")
        assert [s["study_name"] for s in studies] == ["s1"]
        study_id = studies[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}", timeout=10) as resp:
            detail = json.load(resp)
        assert len(detail["trials"]) == 3 and {t["state"] for t in detail["trials"]} == {"Complete"}
        # The constructed trials' files were uploaded to the study (as a sweep uploads the base's): listed and served.
        items = _ids(study_root, "s1")["trial-1"]["items"]
        assert items in {a["artifact_id"] for a in detail["artifacts"]}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/artifacts/{study_id}/{items}", timeout=10) as resp:
            assert resp.read(4) == b"PAR1", "the items file itself, from the artifact store"
        with socket.socket() as s:  # bound to loopback only
            s.settimeout(1)
            other = socket.gethostbyname(socket.gethostname())
            assert other.startswith("127.") or s.connect_ex((other, port)) != 0
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + 15 and "interrupted (SIGTERM)" in err and "Traceback" not in err, err[-2000:]


def test_dashboard_on_another_storage_and_address(study_root, tmp_path):
    """--storage: the study from a SQLite copy that has one trial more than the journal; --host: bound
    to the address given (127.0.0.2), not to 127.0.0.1; --artifacts: the store given."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    url = f"sqlite:///{tmp_path / 'copy.db'}"
    journal = JournalStorage(JournalFileBackend(str(study_root / "runs/s1/journal.log")))
    optuna.copy_study(from_study_name="s1", from_storage=journal, to_storage=url)
    optuna.load_study(study_name="s1", storage=url).enqueue_trial({"lora_r": 4})
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "dashboard", "s1", "--storage", url, "--host", "127.0.0.2",
                             "--port", str(port), "--artifacts", str(study_root / "runs/s1/artifacts")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        served = _studies_served(proc, f"http://127.0.0.2:{port}")
        with urllib.request.urlopen(f"http://127.0.0.2:{port}/api/studies/{served[0]['study_id']}", timeout=10) as resp:
            assert len(json.load(resp)["trials"]) == 4  # the SQLite copy's, not the journal's 3
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # only the address asked for
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
