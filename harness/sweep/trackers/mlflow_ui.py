"""`harness ui`: MLflow's own UI over the tracking store the sweeps logged to.

The installed `mlflow-skinny` has no UI server; the `ui` extra (`pip install 'harness[ui]'`, which
`make setup` installs) brings the full `mlflow`. The server runs as a child process (`mlflow server`,
uvicorn) on 127.0.0.1 unless told otherwise, over `paths.mlflow_uri()` (runs/mlflow.db, or
MLFLOW_TRACKING_URI), and ends with us: Ctrl-C or SIGTERM stop its process group, and if we are
killed outright the kernel sends it SIGTERM. MLflow's telemetry is switched off (no network here).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness.errors import UserError
from harness.runtime import processes
from harness.store import paths
from harness.store.study import shown_url

# No telemetry (no network here), and none of the GenAI job workers (a dozen processes) the run pages do not use.
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def ui_installed() -> bool:
    """The full mlflow, with its server and built UI (mlflow-skinny has neither)."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or spec.origin is None:
        return False
    return importlib.util.find_spec("flask") is not None and (Path(spec.origin).parent / "server/js/build/index.html").is_file()


def check(tracking_uri: str, host: str, port: int) -> None:
    """Exit-2 problems, before anything starts."""
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: expected 1..65535")
    if not ui_installed():
        raise UserError("harness ui: the MLflow UI is not installed (mlflow-skinny has none): pip install 'harness[ui]'")
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        raise UserError(f"harness ui: MLFLOW_TRACKING_URI is a tracking server already ({shown_url(tracking_uri)}): "
                        "open it in a browser")
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise UserError(f"harness ui: no MLflow store at {db} (run a sweep with the mlflow tracker here first, "
                            "or set MLFLOW_TRACKING_URI)")
    try:  # taken or not bindable: said now, not after the server's 10 s start
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as err:
        raise UserError(f"--port {port}: cannot serve on {host}:{port}: {err.strerror or err}") from None


def start(tracking_uri: str, host: str, port: int) -> tuple[subprocess.Popen, str]:
    """The MLflow server as a child in a session of its own (its log on our stdout); returns it and its URL."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port),
           "--workers", "1"]
    proc = subprocess.Popen(cmd, env={**os.environ, **QUIET}, start_new_session=True, preexec_fn=processes.die_with_parent)
    return proc, f"http://{host}:{port}"


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise UserError(f"harness ui: the MLflow server exited with code {proc.returncode} before it was ready "
                            "(is the port taken? see its log above)")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise UserError(f"harness ui: the MLflow server was not ready after {timeout:.0f} s")


def serve(host: str, port: int, ready=None) -> None:
    """Serve until interrupted; `ready(url, store)` once the UI answers."""
    uri = paths.mlflow_uri()
    check(uri, host, port)
    proc, url = start(uri, host, port)
    try:
        wait_ready(url, proc)
        if ready is not None:
            ready(url, shown_url(uri))
        if proc.wait() != 0:
            raise UserError(f"harness ui: the MLflow server stopped with code {proc.returncode} (see its log above)")
    finally:
        processes.stop(proc, grace=15)
