"""Child processes the harness starts end when the harness ends, however it ends.

- SIGTERM is handled like Ctrl-C (`handle_termination`): it raises KeyboardInterrupt in the main
  thread, so every `finally` runs: engines close, servers and workers are stopped, a running trial is
  marked failed ("interrupted (SIGTERM)") and files stay consistent.
  A library may swallow that exception (a bare `except:`); `raise_if_interrupted` raises it again at
  the next safe point.
- Children are started with `die_with_parent` (Linux PR_SET_PDEATHSIG): if the harness is killed
  outright (SIGKILL), the kernel sends them SIGTERM.
- `stop` ends a child and everything it started: SIGTERM (or SIGINT) to its process group, then
  SIGKILL after a grace period.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

PR_SET_PDEATHSIG = 1
_received: list[str] = []  # the signals that interrupted this process, in order


def _raise_interrupt(signum, frame):
    _received.append(signal.Signals(signum).name)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def handle_termination() -> None:
    """SIGTERM and SIGINT raise KeyboardInterrupt in the main thread, and are remembered by name."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)


def ignore_interrupts() -> None:
    """From now on SIGTERM and SIGINT are ignored (the process is already exiting on one); Python keeps
    an ignored signal ignored through its shutdown."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def interrupted() -> bool:
    """Whether SIGTERM or SIGINT reached this process."""
    return bool(_received)


def raise_if_interrupted() -> None:
    """Raise the interrupt again if a signal already arrived. A library's bare `except:` can swallow the
    first KeyboardInterrupt (datasets' fingerprint hashing does, while a trainer is built), so long
    loops call this at safe points: training steps, scoring chunks, between trials."""
    if _received:
        raise KeyboardInterrupt(_received[0])


def interrupt_name(err: KeyboardInterrupt | None = None) -> str:
    """Which signal stopped us ("SIGTERM", "SIGINT"), even when a library re-raised the interrupt bare."""
    if _received:
        return _received[0]
    return err.args[0] if err is not None and err.args and isinstance(err.args[0], str) else "SIGINT"


def die_with_parent() -> None:
    """preexec_fn for Popen: the child gets SIGTERM when the harness process dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent's own handlers still stop the child
        pass


def stop(proc: subprocess.Popen, first: signal.Signals = signal.SIGTERM, grace: float = 30.0) -> None:
    """End `proc` and its process group (it must have been started in a session of its own), or just
    `proc` if it shares ours; SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    own_group = os.getpgid(proc.pid) != os.getpgid(0)
    try:
        os.killpg(proc.pid, first) if own_group else proc.send_signal(first)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL) if own_group else proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass
