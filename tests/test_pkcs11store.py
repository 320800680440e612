"""PKCS#11 key store against a real SoftHSM2 token (made by `hsm init`)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pkcs11
import pytest
from hsm_fixtures import HsmToken
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11 import exceptions as p11e

from crypto import pkcs11store
from crypto.keystore import HsmUnavailable, KeyPolicyViolation, MasterKind, UnwrapError
from crypto.pkcs11store import Pkcs11KeyStore


@pytest.fixture(scope="module")
def store(hsm_token: HsmToken) -> Pkcs11KeyStore:
    return Pkcs11KeyStore(hsm_token.label, hsm_token.pin, library=hsm_token.library,
                          prefix="t-main", create=True)


def test_master_value_cannot_be_read_or_wrapped(store: Pkcs11KeyStore) -> None:
    def attempt(sess: Any, keys: dict[tuple[MasterKind, int], Any]) -> list[str]:
        outcomes = []
        wrap_master = keys[(MasterKind.WRAP, 1)]
        derive_master = keys[(MasterKind.DERIVE, 1)]
        for k in (wrap_master, derive_master):
            try:
                k[Attribute.VALUE]
                outcomes.append("read")
            except p11e.AttributeSensitive:
                outcomes.append("sensitive")
        # an extractable wrapping key of our own, to try to export the masters with
        kek = sess.generate_key(KeyType.AES, 256, store=False, template={
            Attribute.WRAP: True, Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False})
        for k in (wrap_master, derive_master):
            try:
                kek.wrap_key(k, mechanism=Mechanism.AES_KEY_WRAP_PAD)
                outcomes.append("wrapped")
            except (p11e.KeyUnextractable, p11e.MechanismInvalid) as exc:
                outcomes.append(type(exc).__name__)
            try:
                kek.wrap_key(k, mechanism=Mechanism.AES_KEY_WRAP)
                outcomes.append("wrapped")
            except (p11e.KeyUnextractable, p11e.MechanismInvalid) as exc:
                outcomes.append(type(exc).__name__)
        return outcomes

    out = store._run_on_token(attempt)
    assert out[:2] == ["sensitive", "sensitive"]
    assert "wrapped" not in out and "read" not in out
    assert "KeyUnextractable" in out


def test_extractable_master_refused_on_load(hsm_token: HsmToken, store: Pkcs11KeyStore) -> None:
    def plant(sess: Any, _keys: Any) -> None:
        sess.generate_key(KeyType.AES, 256, label="t-weak/master-wrap/v1", store=True,
                          template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True,
                                    Attribute.TOKEN: True, Attribute.ENCRYPT: True})
        sess.generate_key(KeyType.GENERIC_SECRET, 256, label="t-weak/master-derive/v1",
                          store=True, template={Attribute.SENSITIVE: True,
                                                Attribute.EXTRACTABLE: False,
                                                Attribute.TOKEN: True, Attribute.SIGN: True})

    store._run_on_token(plant)
    with pytest.raises(KeyPolicyViolation, match="EXTRACTABLE"):
        Pkcs11KeyStore(hsm_token.label, hsm_token.pin, prefix="t-weak")


def test_derive_wrap_unwrap_and_master_rotation(store: Pkcs11KeyStore) -> None:
    a = store.derive(b"ticket/1")
    assert len(a) == 32 and a == store.derive(b"ticket/1") != store.derive(b"ticket/2")
    assert len(store.derive(b"storage", 64)) == 64
    assert store.derive(b"ticket/1", 16) != a[:16]  # length is bound into the derivation
    blob = store.wrap(b"x-wing private key seed", b"gateway/lt")
    assert store.unwrap(blob, b"gateway/lt") == b"x-wing private key seed"
    with pytest.raises(UnwrapError):
        store.unwrap(blob, b"other aad")
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(UnwrapError):
            store.unwrap(bytes(bad), b"gateway/lt")
    assert store.breaker.state.value == "closed"  # forged blobs never trip the breaker
    v = store.rotate_master(MasterKind.WRAP)
    assert v == 2 and store.unwrap(blob, b"gateway/lt") == b"x-wing private key seed"
    assert store.wrap(b"k")[1:5] == (2).to_bytes(4, "big")
    dv = store.rotate_master(MasterKind.DERIVE)
    assert store.derive(b"ticket/1") != a and store.derive(b"ticket/1", version=dv - 1) == a


def test_16_threads_x_2000_ops_zero_errors_on_one_worker(store: Pkcs11KeyStore) -> None:
    worker = pkcs11store.worker_thread()
    seen_threads: set[int] = set()
    original = pkcs11store._Worker.call
    errors: list[BaseException] = []

    def caller(n: int) -> int:
        done = 0
        try:
            for i in range(2000):
                if i % 2:
                    d = store.derive(b"c%d/%d" % (n, i))
                    assert len(d) == 32
                else:
                    pt = os.urandom(16)
                    assert store.unwrap(store.wrap(pt)) == pt
                done += 1
        except BaseException as exc:
            errors.append(exc)
        return done

    def spy(fn: Any) -> Any:
        seen_threads.add(threading.get_ident())
        return fn()

    # every closure that reaches the token runs on the single worker thread
    def call(self: Any, fn: Any, timeout: float) -> Any:
        return original(self, lambda: spy(fn), timeout)

    pkcs11store._Worker.call = call  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(16) as pool:
            counts = list(pool.map(caller, range(16)))
    finally:
        pkcs11store._Worker.call = original  # type: ignore[method-assign]
    assert errors == []
    assert counts == [2000] * 16
    assert seen_threads == {worker.ident}
    assert pkcs11store.login_count() == 1


def test_pin_and_key_bytes_not_in_repr_or_errors(hsm_token: HsmToken,
                                                 store: Pkcs11KeyStore) -> None:
    assert hsm_token.pin not in repr(store)
    with pytest.raises(Exception) as info:
        Pkcs11KeyStore("no-such-token", hsm_token.pin)
    assert hsm_token.pin not in str(info.value)


def test_breaker_opens_on_device_errors_then_fails_fast(store: Pkcs11KeyStore) -> None:
    from crypto.breaker import BreakerPolicy, CircuitBreaker

    t = [0.0]
    breaker = CircuitBreaker(BreakerPolicy(5, 30.0, 3), clock=lambda: t[0])
    old = store.breaker
    store.breaker = breaker
    try:
        def broken(_s: Any, _k: Any) -> None:
            raise p11e.DeviceError("simulated token failure")

        for _ in range(5):
            with pytest.raises(HsmUnavailable):
                store._run_on_token(broken)
        with pytest.raises(HsmUnavailable, match="breaker is open") as info:
            store.derive(b"ticket/1")
        assert info.value.retryable
        t[0] += 30
        for _ in range(3):
            assert len(store.derive(b"probe")) == 32
        assert breaker.state.value == "closed"
    finally:
        store.breaker = old


def test_fork_child_reinitialises(store: Pkcs11KeyStore) -> None:
    expected = store.derive(b"fork-check")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: fresh worker, re-init, login again
        try:
            got = store.derive(b"fork-check")
            os.write(w, b"ok" if got == expected else b"mismatch")
        except BaseException as exc:
            os.write(w, repr(exc).encode()[:200])
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    msg = os.read(r, 300)
    os.close(r)
    assert msg == b"ok" and status == 0
    assert store.derive(b"fork-check") == expected  # the parent is unaffected


def test_library_loaded_once() -> None:
    assert len([k for k in pkcs11._loaded if "softhsm" in k]) == 1
