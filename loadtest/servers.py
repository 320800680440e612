"""Servers under test, each in its own process: the secure gateway and the plaintext baseline.

The harness never imports gateway internals: it runs ``python -m plexigate serve`` (or the
baseline module) as a subprocess on loopback, reads the one "listening on ws://..." line,
and watches the process through /proc (CPU time, RSS). With ``profile_path`` set, the
server runs under ``python -m cProfile -o PATH`` and writes its profile on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

ROOT_PUB = "root.pub"
AUTH_SECRET = "auth-hs256.key"  # a file name
_LISTEN_RE = re.compile(r"listening on (ws://\S+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Target:
    """Where the clients connect, and how: ``secure`` (gateway) or ``plain`` (baseline)."""

    kind: str
    url: str
    root_public_key: bytes = b""
    token_secret: bytes = b""
    pid: int | None = None  # server process to watch, when it is local


def read_keys(keys: Path) -> tuple[bytes, bytes]:
    """root.pub and the development HS256 secret from a keys directory."""
    return (keys / ROOT_PUB).read_bytes(), (keys / AUTH_SECRET).read_bytes()


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0.0 if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` in kB from /proc/<pid>/status (0 if unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class ServerProcess:
    """A server subprocess; a context manager that stops it (SIGTERM, then SIGKILL)."""

    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self, timeout_s: float = 20.0) -> str:
        env = dict(os.environ)
        env.update(self.env)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env
        )
        log.close()
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                m = _LISTEN_RE.search(buf.decode(errors="replace"))
                if m:
                    self.url = m.group(1)
                    return self.url
            elif self.proc.poll() is not None:
                break
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"server did not start: {' '.join(self.argv)}\n{tail}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)  # a profiled server writes its profile first
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _python(profile_path: Path | None) -> list[str]:
    argv = [sys.executable]
    if profile_path is not None:
        argv += ["-m", "cProfile", "-o", str(profile_path)]
    return argv


def gateway_process(
    workdir: Path, profile_path: Path | None = None, uvloop: bool = True,
    redis_url: str | None = None,
) -> ServerProcess:
    """``plexigate serve`` with fresh development keys in ``workdir/keys``, port 0, the
    publish rate limit lifted (the harness measures capacity, not the limiter). With
    ``redis_url``: a clustered node (``--redis`` and a fresh ``--cluster-key-file``)."""
    keys = workdir / "keys"
    if not (keys / "root.pub").exists():  # serve refuses an explicit --keys dir without keys
        subprocess.run(
            [sys.executable, "-m", "plexigate", "keys", "init", str(keys)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    argv = [
        *_python(profile_path),
        "-m", "plexigate", "--log-level", "WARNING", "serve",
        "--keys", str(workdir / "keys"), "--host", "127.0.0.1", "--port", "0",
        "--publish-rate", "1e9", "--publish-burst", "1000000000",
    ]  # fmt: skip
    if not uvloop:
        argv.append("--no-uvloop")
    if redis_url is not None:
        key = workdir / "cluster.key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        argv += ["--redis", redis_url, "--cluster-key-file", str(key)]
    return ServerProcess(argv, workdir / "gateway.log")


def baseline_process(
    workdir: Path, profile_path: Path | None = None, uvloop: bool = True
) -> ServerProcess:
    argv = [*_python(profile_path), "-m", "loadtest.baseline_server", "--port", "0"]
    if not uvloop:
        argv.append("--no-uvloop")
    return ServerProcess(argv, workdir / "baseline.log")


@contextlib.contextmanager
def workdir(keep: Path | None = None) -> Iterator[Path]:
    """A temporary directory for keys and logs (or ``keep`` if given)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="plexigate-loadtest-") as tmp:
        yield Path(tmp)
