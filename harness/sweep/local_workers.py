"""Local workers: `harness sweep FILE --workers N` runs this process and N-1 more of the same sweep.

An extra worker is exactly the command a user would start in another shell: the same sweep file
and options, less `--workers`. Its output goes to runs/<study>/worker-<i>.log. The study's storage
is what they share; each worker keeps its own engine. They end with this process: interrupted with
it (SIGTERM), or killed by the kernel if it is killed outright.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from harness.runtime import processes
from harness.store import paths
from harness.sweep.options import SweepOptions


class ExtraWorkers:
    """N-1 child processes running the same sweep; `wait()` returns the logs of those that failed."""

    def __init__(self, file: Path, study: str, options: SweepOptions, count: int):
        self.logs = [paths.worker_log(study, i) for i in range(1, count + 1)]
        self._files, self.procs = [], []
        for log_path in self.logs:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(log_path, "w")  # noqa: SIM115 - held until the worker exits
            self._files.append(out)
            self.procs.append(subprocess.Popen([sys.executable, "-m", "harness.cli", *options.argv(file)],
                                               stdout=out, stderr=subprocess.STDOUT, preexec_fn=processes.die_with_parent))

    def wait(self) -> list[Path]:
        failed = [log_path for proc, log_path in zip(self.procs, self.logs, strict=True) if proc.wait() != 0]
        for out in self._files:
            out.close()
        return failed

    def stop(self) -> None:
        """This worker was interrupted: interrupt the others too (each marks its running trial failed)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            processes.stop(proc, grace=60)
        for out in self._files:
            out.close()
