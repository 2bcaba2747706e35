"""`harness dashboard`: optuna-dashboard on a study's storage (journal file or database), local by default.

It shows the study's trials, their parameters, objectives and plots, and (from the study's artifact
store) the files each trial uploaded. Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import socketserver
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from harness.errors import UserError
from harness.store import paths
from harness.store.study import StudyHandle, open_artifacts, shown_url, storage_for

log = logging.getLogger(__name__)


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per request (as the optuna-dashboard command serves): a slow client never blocks the others."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        log.debug("%s %s", self.address_string(), format % args)


def serve(study: str, storage: str | None, artifacts: str | None, host: str, port: int, ready=None) -> None:
    """Serve until interrupted. `ready(url)` is called once the server accepts requests."""
    from optuna_dashboard import wsgi

    if not 0 < port < 65536:
        raise UserError(f"--port {port}: expected 1..65535")
    if storage is None and not paths.journal_file(study).is_file():
        raise UserError(f"study {study}: no {paths.journal_file(study)} here (give --storage for sqlite/postgresql)")
    backend = storage_for(study, storage)
    try:
        loaded = optuna.load_study(study_name=study, storage=backend)
    except KeyError:
        raise UserError(f"study {study}: not found in {shown_url(storage) if storage else 'its journal file'}") from None
    try:
        artifact_store = open_artifacts(loaded, artifacts).optuna_store
    except UserError as err:
        if artifacts is not None:
            raise
        log.warning("serving without the trials' artifacts: %s", err)
        artifact_store = None
    try:
        server = make_server(host, port, wsgi(backend, artifact_store=artifact_store), server_class=_ThreadingServer,
                             handler_class=_QuietHandler)
    except OSError as err:  # the address is taken or cannot be bound
        raise UserError(f"--port {port}: cannot serve on {host}:{port}: {err.strerror or err}") from None
    with server:
        if ready is not None:
            ready(f"http://{host}:{port}/dashboard/studies/{StudyHandle(loaded).study_id}")
        server.serve_forever()
