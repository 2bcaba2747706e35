"""SIGTERM stops the harness even when a library swallows the KeyboardInterrupt it raised."""

import subprocess
import sys
import textwrap

# datasets hashes a map's arguments inside a bare `except:` (datasets/fingerprint.py): a SIGTERM that
# lands there is logged as "couldn't be hashed" and forgotten. That is how a sweep worker once trained
# on for a minute after being told to stop.
SWALLOWED = textwrap.dedent("""
    import os, signal, time
    from datasets.fingerprint import update_fingerprint
    from harness.runtime import processes

    processes.handle_termination()

    class SignalWhileHashed:
        def __reduce__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(2)  # the handler raises here, inside datasets' hashing
            return (SignalWhileHashed, ())

    update_fingerprint("0" * 16, len, {"arg": SignalWhileHashed()})
    print("swallowed", processes.interrupted(), flush=True)
    processes.raise_if_interrupted()
    print("went on", flush=True)
""")


def test_a_swallowed_sigterm_is_raised_again_at_the_next_check():
    proc = subprocess.run([sys.executable, "-c", SWALLOWED], capture_output=True, text=True, timeout=120)
    assert "swallowed True" in proc.stdout, proc.stderr[-2000:]  # the library did swallow it
    assert "went on" not in proc.stdout
    assert proc.returncode != 0 and "KeyboardInterrupt: SIGTERM" in proc.stderr
