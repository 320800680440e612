"""Subprocess helpers shared by the CLI tests."""

from __future__ import annotations

import subprocess


def stop_process(p: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """SIGTERM (a clean shutdown is expected), SIGKILL after ``timeout``; the exit code."""
    if p.poll() is None:
        p.terminate()
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()
