"""The gateway behind a key store: wrapped long-term keys, sealed history, rotation while serving.

Real pieces throughout: `plexigate keys init/wrap` through the CLI entry point, the gateway
built by `serve`'s own `build_gateway` from its own argument parser, SDK clients over
loopback WebSockets, the software store and a real SoftHSM2 token (hsm_token fixture).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flaky_store import FlakyStore
from hsm_fixtures import HsmToken
from pkcs11 import exceptions as p11e

from clients.sdk import Client
from crypto.audited import AuditedKeyStore
from crypto.breaker import BreakerPolicy, CircuitBreaker
from crypto.keystore import HsmUnavailable, KeyDestroyed, KeyStore
from crypto.pkcs11store import Pkcs11KeyStore
from crypto.rotation import RotatingKey
from crypto.softstore import SoftKeyStore
from gateway.channels import ChannelHub
from gateway.commands.serve import build_gateway
from gateway.keyfiles import (
    KeyFileError,
    init_keys,
    load_auth_secret,
    load_credentials,
    load_root_public,
)
from gateway.keyruntime import KeyRotator
from gateway.server import Gateway
from plexigate.cli import build_parser, main
from plexigate.devtoken import issue_token

PASSPHRASE = "correct horse battery staple 7"
GRANTS = {"*": ["sub", "pub", "hist"]}
WEEK = 7 * 86400.0


def serve_args(keys: Path, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args(
        ["serve", "--keys", str(keys), "--port", "0", "--no-uvloop", *extra])


def all_bytes_under(directory: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in directory.rglob("*") if p.is_file()]


def assert_no_plaintext_secrets(keys: Path, store: KeyStore) -> None:
    names = {p.name for p in keys.iterdir()}
    for plain in ("root.key", "auth-hs256.key", "gateway-x-wing.key",
                  "gateway-mlkem1024-x25519.key"):
        assert plain not in names
        assert plain + ".wrapped" in names
    secrets = [load_auth_secret(keys, store)]
    secrets += [c.private_key.seed_bytes() for c in load_credentials(keys, store).values()]
    for path, data in all_bytes_under(keys):  # not in any file, the store's own included
        for s in secrets:
            assert s not in data and s.hex().encode() not in data, path


class Chat:
    """Two SDK clients on a running gateway, in one channel."""

    def __init__(self, gw: Gateway, root_public: bytes, secret: bytes) -> None:
        self.gw, self.root_public, self.secret = gw, root_public, secret
        self.clients: list[Client] = []

    async def connect(self, user: str) -> Client:
        token = issue_token(user, GRANTS, 3600, hs256_secret=self.secret)
        c = await Client.connect(self.gw.url, self.root_public, token)
        await c.join("room")
        self.clients.append(c)
        return c

    async def exchange(self, a: Client, b: Client, text: str) -> None:
        ack = await a.publish("room", text)
        assert ack["delivered"] == 1
        got = await asyncio.wait_for(b.recv(), 5)
        assert got.body == text

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


# -- keys init / wrap ------------------------------------------------------------------


async def test_keys_init_soft_leaves_no_plaintext_and_serve_handshakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLEXI_KEYSTORE_PASSPHRASE", PASSPHRASE)
    keys = tmp_path / "keys"
    assert main(["keys", "init", str(keys), "--keystore", "soft"]) == 0
    store = SoftKeyStore.open(keys / "keystore", PASSPHRASE.encode())
    assert_no_plaintext_secrets(keys, store)
    secret = load_auth_secret(keys, store)
    store.close()
    # without the store, serve refuses clearly instead of running on nothing
    with pytest.raises(KeyFileError, match="wrapped: configure the key store"):
        build_gateway(serve_args(keys))

    gw = build_gateway(serve_args(keys, "--keystore", "soft"))
    assert gw.keys is not None
    await gw.start()
    chat = Chat(gw, load_root_public(keys), secret)
    try:
        alice, bob = await chat.connect("alice"), await chat.connect("bob")
        # `plexigate token --keystore soft` unwraps the dev secret too
        capsys.readouterr()
        assert main(["token", "--keys", str(keys), "--user", "carol", "--keystore", "soft"]) == 0
        carol = await Client.connect(gw.url, load_root_public(keys),
                                     capsys.readouterr().out.strip())
        chat.clients.append(carol)
        await carol.ping()
        await chat.exchange(alice, bob, "over wrapped keys")
        await chat.exchange(bob, alice, "and back")
        assert [m.body for m in await bob.history("room")] == ["over wrapped keys", "and back"]
    finally:
        await chat.close()
        await gw.close()
    assert main(["audit", "verify", "--log", str(keys / "audit" / "audit.log")]) == 0


async def test_keys_wrap_converts_a_plaintext_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLEXI_KEYSTORE_PASSPHRASE", PASSPHRASE)
    keys = tmp_path / "keys"
    init_keys(keys)  # development mode: plaintext 0600
    before = {k: c.private_key.public_bytes for k, c in load_credentials(keys).items()}
    auth = load_auth_secret(keys)
    assert main(["keys", "wrap", str(keys), "--keystore", "soft"]) == 0
    store = SoftKeyStore.open(keys / "keystore", PASSPHRASE.encode())
    try:
        assert_no_plaintext_secrets(keys, store)
        after = {k: c.private_key.public_bytes for k, c in load_credentials(keys, store).items()}
        assert after == before and load_auth_secret(keys, store) == auth
        # AAD binds each file to its role: a blob moved over another key's file fails
        (keys / "gateway-mlkem1024-x25519.key.wrapped").write_bytes(
            (keys / "gateway-x-wing.key.wrapped").read_bytes())
        with pytest.raises(KeyFileError, match="does not unwrap"):
            load_credentials(keys, store)
    finally:
        store.close()
    assert main(["keys", "wrap", str(keys)]) == 1  # --keystore is required


# -- sealed history and rotation --------------------------------------------------------


class _Member:
    def __init__(self, user: str) -> None:
        self.user = user
        self.got: list[bytes] = []

    def deliver(self, payload: bytes) -> bool:
        self.got.append(payload)
        return True


def test_history_sealed_opens_across_rotation_and_destroyed_version_fails_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SoftKeyStore.create(tmp_path / "ks", b"pw")
    rk = RotatingKey.create(store, tmp_path / "storage.json", "gateway-storage")
    hub = ChannelHub(10, sealer=rk)
    alice = _Member("alice")
    hub.join(alice, "room")
    hub.publish(alice, "room", "secret one")
    raw = list(hub._channels["room"].history)
    assert all(b"secret one" not in e for e in raw)  # at rest in the hub: sealed
    assert rk.rotate() == 2
    hub.publish(alice, "room", "secret two")
    assert [b"secret one" in e for e in hub.history("room", 10)] == [True, False]
    assert b"secret two" in hub.history("room", 10)[1]
    # entries are bound to their channel
    with pytest.raises(Exception, match="failed to authenticate"):
        rk.open(raw[0], b"history/other")
    assert rk.rotate() == 3
    rk.destroy(1)
    with pytest.raises(KeyDestroyed, match="v1 is destroyed"):
        rk.open(raw[0], b"history/room")
    with caplog.at_level(logging.WARNING, "plexigate.channels"):
        left = hub.history("room", 10)
    assert len(left) == 1 and b"secret two" in left[0]
    assert "KeyDestroyed x1" in caplog.text
    store.close()


async def test_rotation_while_serving_keeps_sessions_and_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PLEXI_KEYSTORE_PASSPHRASE", PASSPHRASE)
    keys = tmp_path / "keys"
    assert main(["keys", "init", str(keys), "--keystore", "soft"]) == 0
    gw = build_gateway(serve_args(keys, "--keystore", "soft", "--rotation-interval", "0.02"))
    assert gw.keys is not None
    now = [time.time()]
    gw.keys.rotator.clock = lambda: now[0]  # fake clock drives the age policy
    rk = gw.keys.storage
    secret = load_auth_secret(keys, gw.keys.store)
    await gw.start()
    chat = Chat(gw, load_root_public(keys), secret)
    try:
        alice, bob = await chat.connect("alice"), await chat.connect("bob")
        await chat.exchange(alice, bob, "before rotation")
        await asyncio.sleep(0.1)  # a few ticks: nothing due
        assert rk.active_version == 1 and gw.keys.rotator.ticks >= 2
        with caplog.at_level(logging.INFO, "plexigate.keys"):
            now[0] += WEEK + 1
            await wait_for(lambda: rk.active_version == 2)
            now[0] += WEEK + 1
            await wait_for(lambda: rk.active_version == 3)
        assert "key gateway-storage rotated to v2" in caplog.text
        # same client objects, same sessions: nobody reconnected
        assert gw.sessions == 2 and not alice.closed and not bob.closed
        await chat.exchange(bob, alice, "after rotation")
        await chat.exchange(alice, bob, "still here")
        hist = [m.body for m in await alice.history("room")]
        assert hist == ["before rotation", "after rotation", "still here"]
        versions = {int.from_bytes(e[1:5], "big") for e in gw.hub._channels["room"].history}
        assert versions == {1, 3}  # the first entry is still sealed under v1 and opens
    finally:
        await chat.close()
        await gw.close()
    # the state file on disk agrees, and every step is in a verifiable audit log
    reloaded = RotatingKey.load(SoftKeyStore.open(keys / "keystore", PASSPHRASE.encode()),
                                keys / "storage-key.json")
    assert reloaded.active_version == 3
    assert main(["audit", "verify", "--log", str(keys / "audit" / "audit.log")]) == 0


async def test_rotator_survives_hsm_unavailable_and_other_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(SoftKeyStore.create(tmp_path / "ks", b"pw"))
    rk = RotatingKey.create(store, tmp_path / "s.json", "gateway-storage")
    blob = rk.seal(b"old", b"a")
    now = [time.time() + WEEK + 1]
    rotator = KeyRotator([rk], interval=0.01, clock=lambda: now[0])
    store.down = True
    with caplog.at_level(logging.WARNING, "plexigate.keys"):
        assert await rotator.tick() == []
    assert rotator.failures == 1 and rk.active_version == 1
    assert "rotation deferred, HSM unavailable" in caplog.text
    assert rk.open(blob, b"a") == b"old"  # already-unwrapped versions keep working
    rk.seal(b"new", b"a")

    def boom(now: float | None = None) -> int | None:
        raise RuntimeError("disk full")

    other = RotatingKey.create(SoftKeyStore.create(tmp_path / "ks2", b"pw"),
                               tmp_path / "o.json", "other")
    other.maybe_rotate = boom  # type: ignore[method-assign]
    rotator.keys.append(other)
    rotator.start()
    await wait_for(lambda: rotator.ticks >= 3)
    store.down = False
    await wait_for(lambda: rk.active_version == 2)
    await rotator.stop()
    assert rotator.failures >= 4 and rotator.rotations == 1
    assert rk.open(blob, b"a") == b"old"


# -- the same with a real SoftHSM2 token ---------------------------------------------------


def _trip_breaker(store: Pkcs11KeyStore, clock: list[float]) -> None:
    store.breaker = CircuitBreaker(BreakerPolicy(5, 30.0, 3), clock=lambda: clock[0])

    def broken(_s: Any, _k: Any) -> None:
        raise p11e.DeviceError("simulated token failure")

    for _ in range(5):
        with pytest.raises(HsmUnavailable):
            store._run_on_token(broken)


async def test_softhsm2_wrapped_keys_serve_rotate_and_survive_hsm_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hsm_token: HsmToken,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PLEXI_HSM_PIN", hsm_token.pin)
    opts = ["--keystore", "pkcs11", "--token", hsm_token.label, "--library", hsm_token.library]
    keys = tmp_path / "keys"
    assert main(["keys", "init", str(keys), *opts]) == 0
    assert not (keys / "keystore").exists()  # masters live in the token only
    gw = build_gateway(serve_args(keys, *opts, "--rotation-interval", "0.02"))
    assert gw.keys is not None and isinstance(gw.keys.store, AuditedKeyStore)
    token_store = gw.keys.store.inner
    assert isinstance(token_store, Pkcs11KeyStore)
    assert_no_plaintext_secrets(keys, gw.keys.store)
    secret = load_auth_secret(keys, gw.keys.store)
    now = [time.time()]
    gw.keys.rotator.clock = lambda: now[0]
    rk = gw.keys.storage
    await gw.start()
    chat = Chat(gw, load_root_public(keys), secret)
    breaker_clock = [0.0]
    try:
        alice, bob = await chat.connect("alice"), await chat.connect("bob")
        await chat.exchange(alice, bob, "hello from the token")
        # the HSM goes away: rotation is due but every tick fails fast, serving goes on
        _trip_breaker(token_store, breaker_clock)
        failures = gw.keys.rotator.failures
        with caplog.at_level(logging.WARNING, "plexigate.keys"):
            now[0] += WEEK + 1
            await wait_for(lambda: gw.keys is not None and gw.keys.rotator.failures
                           >= failures + 3)
        assert "HSM unavailable" in caplog.text and rk.active_version == 1
        await chat.exchange(bob, alice, "during the outage")
        assert [m.body for m in await bob.history("room")] == [
            "hello from the token", "during the outage"]
        # the token is back (breaker half-open after 30 s): the next tick rotates
        breaker_clock[0] += 31
        await wait_for(lambda: rk.active_version == 2)
        await chat.exchange(alice, bob, "after rotation")
        assert gw.sessions == 2
        assert [m.body for m in await alice.history("room")] == [
            "hello from the token", "during the outage", "after rotation"]
    finally:
        token_store.breaker = CircuitBreaker()
        await chat.close()
        await gw.close()
    assert main(["audit", "verify", "--log", str(keys / "audit" / "audit.log")]) == 0


def test_two_writers_share_one_audit_log(tmp_path: Path) -> None:
    """A running gateway and an operator command append to the same audit log."""
    from crypto.audit import verify_log
    from crypto.keyconfig import open_audit_log

    store = SoftKeyStore.create(tmp_path / "ks", b"pw")
    a = open_audit_log(store, tmp_path / "audit", checkpoint_every=5)
    b = open_audit_log(store, tmp_path / "audit", checkpoint_every=5)
    for i in range(12):
        (a if i % 3 else b).append("derive", key="derive", detail={"label": f"l{i}"})
    b.close()
    a.append("wrap", key="wrap")
    a.close()
    result = verify_log(tmp_path / "audit" / "audit.log",
                        (tmp_path / "audit" / "audit.pub").read_bytes())
    assert result.records >= 13 and result.unanchored == 0
    store.close()


def test_serve_refuses_wrong_or_missing_secret_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crypto.keystore import KeyStoreError

    monkeypatch.setenv("PLEXI_KEYSTORE_PASSPHRASE", PASSPHRASE)
    keys = tmp_path / "keys"
    assert main(["keys", "init", str(keys), "--keystore", "soft"]) == 0
    monkeypatch.setenv("PLEXI_KEYSTORE_PASSPHRASE", "wrong passphrase 123")
    with pytest.raises(KeyStoreError) as info:
        build_gateway(serve_args(keys, "--keystore", "soft"))
    assert "wrong passphrase 123" not in str(info.value)
    monkeypatch.delenv("PLEXI_KEYSTORE_PASSPHRASE")
    with pytest.raises(KeyStoreError, match="PLEXI_KEYSTORE_PASSPHRASE"):
        build_gateway(serve_args(keys, "--keystore", "soft"))
    secret_file = tmp_path / "pass"
    secret_file.write_text(PASSPHRASE + "\n")
    gw = build_gateway(serve_args(keys, "--keystore", "soft", "--store-secret-file",
                                  str(secret_file)))
    assert gw.keys is not None and gw.keys.storage.active_version == 1
    asyncio.run(gw.close())
