"""Running untrusted (model-written) Python: one program per child process, contained.

Layers, all applied where the OS allows:
- bubblewrap: new user/pid/net/ipc/uts namespaces, read-only system, a private tmpfs /tmp and work
  dir, dies with its parent. Without it nothing runs (fail closed) unless the user asked for
  "rlimit-only" (recorded in every result), which still gets a private network namespace when we
  are root but can write wherever the user can.
- when the harness runs as root, each program runs as its own unprivileged uid (rotating through
  a private range): it cannot touch root's files or other runs' processes, and RLIMIT_NPROC binds
  per run (it does not bind root; and a fork bomb's unreaped leftovers cannot starve the next run).
- rlimits: address space, CPU seconds, processes, file size, open files, no core dumps.
- a fresh session/process group, killed as a whole on the wall-clock timeout.
- a minimal environment: the harness's variables (tokens) never reach the program.
- a trusted runner execs the program and prints a per-run nonce only after the program (and
  its asserts) ran to the end, so exiting early with status 0 is a failure, not a pass.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError

_live: set[subprocess.Popen] = set()  # programs running now: an interrupted grading kills them all
_live_lock = threading.Lock()
UID_BASE, UID_SPAN = 2_000_000, 4096  # private uids for sandboxed programs (no passwd entry needed)
_run_ids = itertools.count()
CLONE_NEWNET = 0x40000000

RUNNER = r"""
import os, sys
nonce = sys.stdin.readline().strip()
source = open("program.py").read()
# The program runs in a child: its parent is this runner, never the harness, so "kill my parent"
# only ends this sandbox run (as a failure).
pid = os.fork()
if pid:
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 1)
try:
    exec(compile(source, "program.py", "exec"), {"__name__": "__sandbox__"})
except BaseException as err:  # SystemExit too: leaving early is not passing
    sys.stderr.write("%s: %s\n" % (type(err).__name__, str(err)[:300]))
    sys.stderr.flush()
    os._exit(1)
sys.stdout.write("\n" + nonce + "\n")
sys.stdout.flush()
os._exit(0)
"""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    memory_mb: int = 2048
    # Counts every process and thread of the uid system-wide, exited-but-unreaped ones included
    # (bwrap's inner processes are reaped by init a few seconds late): headroom for parallel runs.
    processes: int = 256
    file_mb: int = 1
    open_files: int = 128


@dataclass
class Outcome:
    passed: bool
    status: str  # passed | failed | timeout
    detail: str
    seconds: float


def sandbox_python() -> str:
    """A system interpreter outside home directories (which the sandbox hides and its uids cannot
    enter); programs need only the standard library. Falls back to our own interpreter."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(candidate)
        if os.access(real, os.X_OK) and not real.startswith(("/root", "/home")):
            return real
    return os.path.realpath(sys.executable)


def choose_kind(requested: str | None, where: str = "--sandbox") -> str:
    """The sandbox generated code runs in. Fails closed: bubblewrap, or "rlimit-only" only when asked for.

    rlimit-only bounds memory, CPU, processes and file sizes but isolates neither the filesystem nor
    (unless root) the network: a program can write wherever the user can (a hostile one wrote to /tmp)."""
    if requested == "rlimit-only":
        return "rlimit-only"
    if shutil.which("bwrap"):
        return "bubblewrap"
    raise UserError(f"{where}: generated code runs only inside bubblewrap, which is not installed (apt-get install bubblewrap); "
                    "to run it with resource limits only (no filesystem or network isolation), ask for that: "
                    "--sandbox rlimit-only, or sandbox: rlimit-only in the suite")


def _limit_child(limits: Limits, isolate_net: bool):
    uid = UID_BASE + next(_run_ids) % UID_SPAN

    def apply():
        import resource

        is_root = os.geteuid() == 0
        if isolate_net and is_root:
            ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET)
        mem = limits.memory_mb << 20
        for res, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_CPU, int(limits.timeout_s) + 1),
                           (resource.RLIMIT_FSIZE, limits.file_mb << 20), (resource.RLIMIT_NOFILE, limits.open_files),
                           (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(res, (value, value))
        if is_root:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

    return apply


def _bwrap_prefix(work: Path) -> list[str]:
    prefix = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/", "/",
              "--tmpfs", "/tmp", "--bind", str(work), str(work), "--proc", "/proc", "--dev", "/dev", "--chdir", str(work)]
    # Home directories are replaced by empty read-only mounts (a read-only bind would still let a
    # program read them).
    for hidden in ("/root", "/home"):
        if Path(hidden).is_dir() and not str(work).startswith(hidden):
            prefix += ["--tmpfs", hidden, "--remount-ro", hidden]
    return prefix


def run_program(source: str, limits: Limits = Limits(), kind: str | None = None, attempts: int = 3) -> Outcome:
    """Run `source` contained (in `kind`, default `choose_kind(None)`); passed only if it runs to its end and exits 0.

    When bwrap itself cannot start (EAGAIN under load), that is the harness's failure, not the
    program's: it is retried, and after the last attempt raised rather than scored."""
    kind = kind or choose_kind(None)
    for attempt in range(attempts):
        outcome = _run_once(source, limits, kind)
        if not outcome.detail.startswith("bwrap:"):
            return outcome
        time.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"sandbox could not start: {outcome.detail}")


def _run_once(source: str, limits: Limits, kind: str) -> Outcome:
    work = Path(tempfile.mkdtemp(prefix="harness-sandbox-"))
    os.chmod(work, 0o777)  # the program runs as another (unprivileged) uid
    try:
        (work / "program.py").write_text(source)
        (work / "runner.py").write_text(RUNNER)
        cmd = [sandbox_python(), "-I", "-B", "runner.py"]
        if kind == "bubblewrap":
            cmd = _bwrap_prefix(work) + cmd
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        nonce = secrets.token_hex(16)
        out_path, err_path = work / "stdout", work / "stderr"
        t0 = time.perf_counter()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    start_new_session=True, preexec_fn=_limit_child(limits, kind != "bubblewrap"))
            with _live_lock:
                _live.add(proc)
            try:
                proc.stdin.write((nonce + "\n").encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                code = proc.wait(timeout=limits.timeout_s)
                status = None
            except subprocess.TimeoutExpired:
                code, status = None, "timeout"
            finally:
                _kill_group(proc)
                with _live_lock:
                    _live.discard(proc)
        seconds = time.perf_counter() - t0
        stdout = _tail(out_path)
        if status == "timeout":
            return Outcome(False, "timeout", f"killed after {limits.timeout_s:.1f} s", seconds)
        finished = stdout.rstrip().endswith(nonce)
        if code == 0 and finished:
            return Outcome(True, "passed", "", seconds)
        detail = _tail(err_path).strip().splitlines()[-1:] or [f"exit code {code}" + ("" if finished else ", did not run to its end")]
        return Outcome(False, "failed", detail[0][:300], seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kill_all() -> None:
    """Kill every program still running (the grading was interrupted)."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(path: Path, limit: int = 4096) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - limit))
        return fh.read().decode(errors="replace")
