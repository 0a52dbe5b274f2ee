"""Helpers for the tests that start real servers (assistant serve, chroma run) as subprocesses."""

from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> int | None:
    """SIGTERM (a normal shutdown, so cleanup runs), then wait; kill only if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
