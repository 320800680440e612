"""The real `plexigate serve` process and two `plexigate chat` processes, driven by stdin."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from procs import stop_process

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class Proc:
    def __init__(self, *args: str, cwd: Path) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "plexigate", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=ENV,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            m = rx.search(line)
            if m:
                return m
        raise AssertionError(f"no line matching {pattern!r}; saw:\n" + "\n".join(self.seen))

    def send(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def stop(self) -> int:
        return stop_process(self.p)


@pytest.fixture()
def served(tmp_path: Path):
    keys = tmp_path / "keys"
    init = subprocess.run(
        [sys.executable, "-m", "plexigate", "keys", "init", str(keys)],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    )
    assert "root.pub" in init.stdout
    assert (keys / "root.key").stat().st_mode & 0o777 == 0o600
    server = Proc("serve", "--keys", str(keys), "--port", "0", cwd=tmp_path)
    url = server.expect(r"plexigate listening on (ws://\S+)").group(1)
    yield url, keys, tmp_path
    assert server.stop() == 0  # SIGTERM shuts it down cleanly


def test_two_chat_processes_talk_through_a_served_gateway(served):
    url, keys, cwd = served
    alice = Proc(
        "chat", "--url", url, "--keys", str(keys), "--name", "alice", "--channel", "room", cwd=cwd
    )
    bob = Proc(
        "chat", "--url", url, "--keys", str(keys), "--name", "bob", "--channel", "room", cwd=cwd
    )
    try:
        alice.expect(r"connected as alice \(XWING")
        alice.expect(r"\* joined room")
        bob.expect(r"\* joined room")
        alice.send("hello from alice, ünïcødé")
        bob.expect(r"^\[room\] <alice> hello from alice, ünïcødé$")
        alice.expect(r"\* sent \S+ to 1")
        bob.send("hi alice")
        alice.expect(r"^\[room\] <bob> hi alice$")
        bob.send("/rekey")
        bob.expect(r"rekey started")
        bob.send("after the rekey")
        alice.expect(r"<bob> after the rekey$")
        alice.send("/history")
        alice.expect(r"\(history\) \[room\] <bob> after the rekey")
        alice.send("/quit")
        alice.expect(r"\* bye")
        bob.p.stdin.close()  # EOF ends the chat too
        bob.expect(r"\* bye")
        assert alice.p.wait(10) == 0 and bob.p.wait(10) == 0
    finally:
        alice.stop()
        bob.stop()


def test_chat_refuses_a_gateway_certified_by_another_root(served, tmp_path):
    url, _, cwd = served
    other = tmp_path / "other"
    subprocess.run(
        [sys.executable, "-m", "plexigate", "keys", "init", str(other)],
        capture_output=True,
        check=True,
        env=ENV,
    )
    eve = Proc("chat", "--url", url, "--keys", str(other), "--name", "eve", cwd=cwd)
    try:
        eve.expect(r"cannot connect: session closed: code=4005")
        assert eve.p.wait(10) == 1
    finally:
        eve.stop()
