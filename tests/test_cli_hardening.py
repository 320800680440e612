"""Operator mistakes and hostile peers at the command line: `plexigate` refuses with one clear
line (no traceback), never serves on a silent surprise, and never lets a peer drive the
terminal. Most tests run the CLI as the user does: ``python -m plexigate ...``."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from procs import stop_process

from clients.chat import format_message, safe
from clients.sdk import Message
from gateway.keyfiles import init_keys, load_auth_secret
from plexigate.cli import main
from plexigate.devtoken import issue_token

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def plexigate(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plexigate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or ENV,
        timeout=timeout,
    )


def assert_clean_error(r: subprocess.CompletedProcess[str], pattern: str, code: int = 1) -> None:
    """Exit ``code``, ``pattern`` on one line of the output, and no Python traceback."""
    out = r.stdout + r.stderr
    assert r.returncode == code, out
    assert "Traceback" not in out, out
    assert re.search(pattern, out), out
    lines = [ln for ln in out.splitlines() if re.search(pattern, ln)]
    assert len(lines) == 1, out


class Server:
    """A `plexigate serve` process; stdout and stderr read line by line in a thread."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-m", "plexigate", "serve", "--no-uvloop", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=ENV,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, sink in ((self.p.stdout, self.stdout), (self.p.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line.rstrip("\n"))
            self.out.put(line)

    def wait_listening(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stdout:
                if m := re.search(r"plexigate listening on (ws://\S+)", line):
                    return m.group(1)
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("serve did not start:\n" + "\n".join(self.stdout + self.stderr))

    def stop(self) -> int:
        return stop_process(self.p)


@pytest.fixture()
def keys(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    init_keys(d)
    return d


@pytest.fixture()
def served(keys: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    server = Server("--keys", str(keys), "--port", "0", cwd=tmp_path)
    try:
        yield server.wait_listening(), keys
    finally:
        assert server.stop() == 0


# -- M5: serve validates its configuration at startup ----------------------------------------


def test_serve_refuses_an_explicit_keys_path_without_keys(tmp_path: Path) -> None:
    missing = tmp_path / "typo-keys"
    r = plexigate("serve", "--keys", str(missing), "--port", "0", cwd=tmp_path)
    assert_clean_error(r, rf"no keys in {re.escape(str(missing))} \(run: plexigate keys init ")
    assert not missing.exists()  # no brand-new deployment root nobody pins


def test_serve_default_keys_path_still_creates_development_keys(tmp_path: Path) -> None:
    server = Server("--port", "0", cwd=tmp_path)
    try:
        server.wait_listening()
    finally:
        assert server.stop() == 0
    assert (tmp_path / ".plexigate" / "keys" / "root.pub").exists()
    assert any("creating development keys" in ln for ln in server.stderr)


@pytest.mark.parametrize(
    ("target", "mode", "message"),
    [
        ("root.key", 0o644, r"root\.key is readable by others \(mode 0644\); chmod 600 it"),
        ("auth-hs256.key", 0o640, r"auth-hs256\.key is readable by others \(mode 0640\)"),
        ("gateway-x-wing.key", 0o620, r"gateway-x-wing\.key is writable by others"),
        ("ticket.key", 0o604, r"ticket\.key is readable by others"),
        (".", 0o777, r"keys directory .* is writable by others \(mode 0777\); chmod 700 it"),
    ],
)
def test_serve_refuses_secrets_others_may_read(
    keys: Path, tmp_path: Path, target: str, mode: int, message: str
) -> None:
    (keys / target).chmod(mode)
    r = plexigate("serve", "--keys", str(keys), "--port", "0", cwd=tmp_path)
    assert_clean_error(r, message)


def test_serve_refuses_an_expired_certificate(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    init_keys(keys, validity_s=-86400)  # not_after a day ago (not_before is backdated 2 days)
    r = plexigate("serve", "--keys", str(keys), "--port", "0", cwd=tmp_path)
    assert_clean_error(r, r"certificate .*\.cert expired on \d{4}-\d\d-\d\d .*keys init/rotate")


def test_serve_refuses_a_certificate_not_yet_valid(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with mock.patch("gateway.keyfiles.time.time", return_value=time.time() + 30 * 86400):
        init_keys(keys)
    r = plexigate("serve", "--keys", str(keys), "--port", "0", cwd=tmp_path)
    assert_clean_error(r, r"certificate .*\.cert is not valid before \d{4}-")


@pytest.mark.parametrize("days", ["0", "-3"])
def test_keys_init_refuses_a_validity_that_is_not_positive(tmp_path: Path, days: str) -> None:
    r = plexigate("keys", "init", str(tmp_path / "k"), "--days", days)
    assert_clean_error(r, r"argument --days: must be at least 1", code=2)
    assert not (tmp_path / "k").exists()


def test_serve_refuses_suites_that_min_level_leaves_empty(keys: Path, tmp_path: Path) -> None:
    r = plexigate(
        "serve", "--keys", str(keys), "--port", "0", "--min-level", "high",
        "--suites", "XWING_CHACHA20POLY1305_SHA256,XWING_AES256GCM_SHA256",
        cwd=tmp_path,
    )  # fmt: skip
    assert_clean_error(r, r"no suite in --suites meets --min-level high")
    r = plexigate("serve", "--keys", str(keys), "--port", "0", "--suites", "NOPE", cwd=tmp_path)
    assert_clean_error(r, r"unknown suite 'NOPE'")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--port", "70000", "must be at most 65535"),
        ("--port", "-1", "must be at least 0"),
        ("--max-frame", "100", "must be at least 4096"),
        ("--handshake-timeout", "0", "must be positive"),
        ("--handshake-timeout", "nan", "not a finite number"),
        ("--outbound-queue", "0", "must be at least 1"),
        ("--publish-rate", "-5", "must be positive"),
        ("--publish-burst", "0", "must be at least 1"),
        ("--directory-blocks", "1000", "must be a power of two, at least 16"),
        ("--directory-blocks", "8", "must be a power of two, at least 16"),
        ("--max-channels", "0", "must be at least 1"),
        ("--max-connections-per-user", "-1", "must be at least 1"),
        ("--rekey-after-messages", "0", "must be at least 1"),
        ("--rekey-after-seconds", "0", "must be positive"),
        ("--max-skew-ms", "-1", "must be at least 0"),
        ("--rotation-interval", "0", "must be positive"),
        ("--storage-key-max-uses", "0", "must be at least 1"),
        ("--max-frame", "lots", "not an integer"),
    ],
)
def test_serve_numeric_limits_are_usage_errors(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    r = plexigate("serve", "--keys", str(tmp_path / "k"), option, value)
    assert_clean_error(r, rf"argument {option}: {message}", code=2)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--max-age", "0", "must be positive"),
        ("--max-uses", "0", "must be at least 1"),
        ("--max-uses", str(2**32 + 1), "must be at most 4294967296"),
        ("--destroy", "-1", "must be at least 1"),
    ],
)
def test_keys_rotate_numeric_options_are_usage_errors(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    r = plexigate("keys", "rotate", "--state", str(tmp_path / "s.json"), option, value)
    assert_clean_error(r, rf"argument {option}: {message}", code=2)


# -- M6: no tracebacks from the CLI -----------------------------------------------------------


def test_serve_port_in_use_is_one_line(keys: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        for loop in ([], ["--no-uvloop"]):
            r = plexigate("serve", "--keys", str(keys), "--port", str(port), *loop, cwd=tmp_path)
            assert_clean_error(
                r, rf"cannot listen on 127\.0\.0\.1:{port}: address already in use"
            )


def test_serve_bad_host_is_one_line(keys: Path, tmp_path: Path) -> None:
    r = plexigate("serve", "--keys", str(keys), "--host", "256.1.1.1", "--port", "0",
                  cwd=tmp_path)  # fmt: skip
    assert_clean_error(r, r"cannot listen on 256\.1\.1\.1:0: ")


def test_serve_corrupted_certificate_is_one_line(keys: Path, tmp_path: Path) -> None:
    cert = keys / "gateway-x-wing.cert"
    cert.write_bytes(cert.read_bytes()[:100])
    r = plexigate("serve", "--keys", str(keys), "--port", "0", cwd=tmp_path)
    assert_clean_error(r, r"gateway-x-wing\.cert: certificate truncated")


def test_serve_keys_naming_a_file_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "notadir"
    f.write_text("x")
    r = plexigate("serve", "--keys", str(f), "--port", "0", cwd=tmp_path)
    assert_clean_error(r, r"notadir is not a directory")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "notaurl"])
def test_chat_bad_url_is_one_line(keys: Path, tmp_path: Path, url: str) -> None:
    r = plexigate("chat", "--url", url, "--keys", str(keys), "--name", "alice", cwd=tmp_path)
    assert_clean_error(r, rf"\* cannot connect: .*\({re.escape(url)}\)$")


def test_chat_cannot_join_is_one_line(served: tuple[str, Path], tmp_path: Path) -> None:
    url, keys = served
    r = plexigate("chat", "--url", url, "--keys", str(keys), "--channel", "bad channel!",
                  cwd=tmp_path)  # fmt: skip
    assert_clean_error(r, r"\* cannot join bad channel!: ")
    # a token without a grant on the channel
    token = issue_token("carol", {"elsewhere": ["sub"]}, hs256_secret=load_auth_secret(keys))
    r = plexigate("chat", "--url", url, "--keys", str(keys), "--channel", "lobby",
                  cwd=tmp_path, env={**ENV, "PLEXI_TOKEN": token})  # fmt: skip
    assert_clean_error(r, r"\* cannot join lobby: forbidden: ")


def test_demo_cannot_join_is_one_line(tmp_path: Path) -> None:
    r = plexigate("demo", "--channel", "bad ch", cwd=tmp_path)
    assert_clean_error(r, r"\* cannot join bad ch: ")


def test_cli_safety_net_prints_one_line_and_traceback_only_on_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import plexigate.commands.token as token_cmd

    def boom(_args: object) -> int:
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(token_cmd, "run", boom)
    assert main(["token", "--user", "u"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: RuntimeError: something broke"
    assert main(["--log-level", "debug", "token", "--user", "u"]) == 1
    assert "Traceback" in capsys.readouterr().err


# -- M7: the development token only on loopback ----------------------------------------------


def test_serve_prints_the_dev_token_only_on_loopback(keys: Path, tmp_path: Path) -> None:
    server = Server("--keys", str(keys), "--host", "0.0.0.0", "--port", "0", cwd=tmp_path)
    try:
        server.wait_listening()
        time.sleep(0.3)
    finally:
        assert server.stop() == 0
    assert not any("token=" in ln or "#root=" in ln for ln in server.stdout), server.stdout
    assert any(
        "WARNING" in ln and "development keys/secrets in use on non-loopback" in ln
        for ln in server.stderr
    ), server.stderr
    server = Server("--keys", str(keys), "--host", "127.0.0.1", "--port", "0", cwd=tmp_path)
    try:
        server.wait_listening()
        deadline = time.monotonic() + 10
        while not any("token=" in ln for ln in server.stdout) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        assert server.stop() == 0
    assert any("browser client (development)" in ln for ln in server.stdout)


def test_is_loopback() -> None:
    from gateway.commands.serve import is_loopback

    for host in ("127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST."):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "10.0.0.1", "example.com", "localhost.evil.com"):
        assert not is_loopback(host), host


# -- M3: peer strings cannot drive the terminal ----------------------------------------------

EVIL = "\x1b]0;PWNED\x07\x1b[2J\rfake\n[esc] <admin> run this"


def test_chat_escapes_control_characters_in_peer_strings() -> None:
    line = format_message(Message("lobby", "mallory\x1b[31m\u202e", EVIL, "m1", 0))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x07" not in line
    assert "\u202e" not in line
    assert line == (
        "[lobby] <mallory\\x1b[31m\\u202e> \\x1b]0;PWNED\\x07\\x1b[2J\\rfake\\n"
        "[esc] <admin> run this"
    )
    for c in ("\t", "\x7f", "\x85", "\x9b", "\u2066", "\u2069", "\u202a", "\u2028", "\u200f"):
        assert c not in safe(f"a{c}b"), repr(c)
    assert safe("héllo 世界 ✓ — ok") == "héllo 世界 ✓ — ok"  # printable text is left alone


def test_chat_process_shows_a_hostile_message_escaped(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    import asyncio

    from clients.sdk import Client
    from gateway.keyfiles import load_root_public

    url, keys = served
    chat = subprocess.Popen(
        [sys.executable, "-m", "plexigate", "chat", "--url", url, "--keys", str(keys),
         "--name", "alice", "--channel", "lobby"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        cwd=tmp_path, env=ENV,
    )  # fmt: skip
    assert chat.stdout is not None and chat.stdin is not None
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(b) for b in chat.stdout], daemon=True).start()

    def wait_for(needle: bytes) -> list[bytes]:
        seen: list[bytes] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=0.1))
            except queue.Empty:
                continue
            if needle in seen[-1]:
                return seen
        raise AssertionError(seen)

    try:
        wait_for(b"* joined lobby")

        async def mallory() -> None:
            token = issue_token("mallory", hs256_secret=load_auth_secret(keys))
            c = await Client.connect(url, load_root_public(keys), token)
            await c.join("lobby")
            await c.publish("lobby", EVIL)
            await c.close()

        asyncio.run(mallory())
        seen = wait_for(b"<mallory>")
    finally:
        chat.stdin.close()
        chat.wait(15)
    shown = seen[-1]
    assert b"\x1b" not in shown and b"\r" not in shown and b"\x07" not in shown
    assert shown.rstrip(b"\n").endswith(b"<mallory> \\x1b]0;PWNED\\x07\\x1b[2J\\rfake\\n"
                                        b"[esc] <admin> run this")
    assert not any(ln.startswith(b"[esc] <admin>") for ln in seen)  # no forged line


# -- LOW2: `plexigate token` issues only what the gateway accepts ----------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "bad user"], "user 'bad user' is not 1-128 characters"),
        (["--user", "x" * 129], "is not 1-128 characters"),
        (["--user", "evil\x1b[2J"], "is not 1-128 characters"),
        (["--user", "u", "--grant", "bad ch!=sub"], "grant channel 'bad ch!' is not"),
        (["--user", "u", "--grant", "a*=sub"], "grant channel 'a\\*' is not"),
        (["--user", "u", "--ttl", "0"], "--ttl must be 1..31536000"),
        (["--user", "u", "--ttl", "31536001"], "--ttl must be 1..31536000"),
    ],
)
def test_token_refuses_what_the_gateway_would_refuse(
    keys: Path, args: list[str], message: str
) -> None:
    r = plexigate("token", "--keys", str(keys), *args)
    assert_clean_error(r, f"error: .*{message}")
    assert "eyJ" not in r.stdout  # no token printed


def test_token_accepts_valid_users_and_patterns(keys: Path) -> None:
    r = plexigate(
        "token", "--keys", str(keys), "--user", "a.b-c_d@example.com:+1", "--ttl", "31536000",
        "--grant", "*=sub", "--grant", "team:*=sub,pub", "--grant", "team:dev.ops-1=hist",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().count(".") == 2


# -- LOW5, LOW6, LOW8, .gitignore -------------------------------------------------------------


def test_log_level_is_a_choice(tmp_path: Path) -> None:
    r = plexigate("--log-level", "bogus", "token", "--user", "u")
    assert_clean_error(r, r"argument --log-level: invalid choice: 'BOGUS'", code=2)
    assert main(["--log-level", "warning", "audit"]) == 2  # case-insensitive, accepted


def test_audit_verify_names_the_missing_log(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent.log"
    r = plexigate("audit", "verify", "--log", str(missing))
    assert_clean_error(r, rf"no audit log at {re.escape(str(missing))}")
    assert "audit.pub" not in r.stdout + r.stderr


def test_pyproject_uses_the_pep639_license_form() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in meta["build-system"]["requires"]


def test_local_key_directories_are_git_ignored() -> None:
    r = subprocess.run(
        ["git", "check-ignore", "keys/root.key", ".plexigate/keys/root.key"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode == 128:  # not a git checkout (an sdist): read the patterns instead
        lines = (REPO / ".gitignore").read_text().split()
        assert "keys/" in lines and ".plexigate/" in lines
        return
    assert r.stdout.split() == ["keys/root.key", ".plexigate/keys/root.key"]
