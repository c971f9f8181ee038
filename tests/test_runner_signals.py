"""A node stops on SIGTERM / Ctrl-C even when the kernel hands the signal to one of its threads."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The signal goes to a worker thread, as it often does in a node (paho, onnxruntime and the
# service's own threads outnumber the main thread); the main thread waits as run_node does.
_NODE = textwrap.dedent(
    """
    import signal, threading
    from homesec.runner import wait_for_stop

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ready = threading.Event()

    def worker():
        ready.set()
        threading.Event().wait(60)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    ready.wait()
    signal.pthread_kill(thread.ident, signal.SIGTERM)
    wait_for_stop(stop)
    print("stopped", flush=True)
    """
)


def test_a_signal_taken_by_another_thread_still_stops_the_node() -> None:
    done = subprocess.run([sys.executable, "-c", _NODE], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"
