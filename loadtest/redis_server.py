"""A throwaway redis-server for benchmarks: loopback, free port, temp dir, no persistence.

One helper for the harness (``plexigate loadtest relay --store redis``), the benchmarks and
the test fixtures; it is stopped (and its directory removed) on exit.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


class RedisServerError(Exception):
    """redis-server is missing or did not start."""


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def start(port: int, directory: str) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:``port`` (no persistence) and wait for PONG."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RedisServerError("redis-server is not installed (apt-get install redis-server)")
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", directory, "--save", "",
         "--appendonly", "no", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            stop(proc)
            raise RedisServerError("redis-server did not start")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(prefix: str = "plexi-bench-redis-", quiet: bool = False) -> Iterator[str]:
    """Yields ``redis://127.0.0.1:<port>/0`` of a fresh redis-server."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    port = free_port()
    try:
        proc = start(port, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if not quiet:
            _progress(f"started redis-server on 127.0.0.1:{port} (pid {proc.pid})")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
