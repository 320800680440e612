"""PKCS#11 key store (SoftHSM2 locally) through python-pkcs11.

Theory of operation
-------------------
- SoftHSM2 runs with its own locking off when initialised the way python-pkcs11 does it, and
  concurrent calls from several threads crash the process. So every PKCS#11 call in the
  process, from every store instance, runs on ONE worker thread (:class:`_Worker`): callers
  put a closure on a queue and wait on a future. Nothing outside the worker touches a
  python-pkcs11 object.
- One session and one login per (library, token) per process, opened lazily by the worker.
- After ``fork()`` the child gets a fresh worker; its first call re-initialises the library
  (C_Finalize + C_Initialize), logs in again and reloads key handles (``os.register_at_fork``).
- Master keys are generated inside the token: AES-256 (wrap) and GENERIC_SECRET-256 (derive),
  CKA_TOKEN, CKA_SENSITIVE, not CKA_EXTRACTABLE. Every load checks CKA_SENSITIVE,
  CKA_ALWAYS_SENSITIVE, not CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE, key type and length, and
  refuses the key with :class:`KeyPolicyViolation` otherwise.
- Labels: ``{prefix}/master-wrap/v{n}`` and ``{prefix}/master-derive/v{n}``; the highest
  version is active, so generating it is the single atomic step of a master rotation.
- Token failures go through a :class:`CircuitBreaker`; they surface as
  :class:`HsmUnavailable` (retryable). A bad blob or an unknown version is not a token
  failure and does not trip the breaker.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.mechanisms import GCMParams

from crypto.breaker import CircuitBreaker
from crypto.keystore import (
    NONCE_LEN,
    WRAP_AAD_PREFIX,
    WRAP_FORMAT,
    WRAP_HEADER,
    HsmUnavailable,
    KeyNotFound,
    KeyPolicyViolation,
    KeyStore,
    KeyStoreError,
    MasterInfo,
    MasterKind,
    UnwrapError,
    active_version,
    check_derive_args,
    derive_block_input,
    lookup_master,
    parse_wrapped,
)

T = TypeVar("T")

DEFAULT_LIBRARY = "/usr/lib/softhsm/libsofthsm2.so"

# Errors that mean "the token is unwell", as opposed to "this input or key is wrong".
_DEVICE_ERRORS: tuple[type[BaseException], ...] = (
    p11e.DeviceError,
    p11e.DeviceMemory,
    p11e.DeviceRemoved,
    p11e.TokenNotPresent,
    p11e.SessionClosed,
    p11e.SessionHandleInvalid,
    p11e.GeneralError,
    p11e.UserNotLoggedIn,
)

_KEY_TYPES = {MasterKind.WRAP: KeyType.AES, MasterKind.DERIVE: KeyType.GENERIC_SECRET}


class _Worker:
    """One daemon thread running queued closures in order."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pkcs11-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            fn, fut = self._q.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def call(self, fn: Callable[[], T], timeout: float) -> T:
        if threading.get_ident() == self._thread.ident:
            return fn()
        fut: Future[T] = Future()
        self._q.put((fn, fut))
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise HsmUnavailable(f"HSM call timed out after {timeout:.1f}s") from None

    @property
    def thread(self) -> threading.Thread:
        return self._thread


@dataclass
class _Process:
    """Per-process PKCS#11 state: the worker, sessions by (library, token), generation."""

    worker: _Worker = field(default_factory=_Worker)
    sessions: dict[tuple[str, str], Any] = field(default_factory=dict)
    generation: int = 0
    forked: bool = False
    logins: int = 0


_proc = _Process()


def _after_fork_in_child() -> None:
    global _proc
    _proc = _Process(generation=_proc.generation + 1, forked=True)


os.register_at_fork(after_in_child=_after_fork_in_child)


def worker_thread() -> threading.Thread:
    """The thread every PKCS#11 call of this process runs on (for tests and diagnostics)."""
    return _proc.worker.thread


def login_count() -> int:
    """How many C_Login calls this process made (one per token is the rule)."""
    return _proc.logins


def _session(lib_path: str, token_label: str, pin: str) -> Any:
    """Open (once) a logged-in RW session; runs on the worker."""
    proc = _proc
    key = (lib_path, token_label)
    sess = proc.sessions.get(key)
    if sess is not None:
        return sess
    lib = pkcs11.lib(lib_path)
    if proc.forked:
        lib.reinitialize()
        proc.forked = False
    try:
        token = lib.get_token(token_label=token_label)
    except (p11e.NoSuchToken, p11e.MultipleTokensReturned) as exc:
        raise KeyStoreError(f"no single PKCS#11 token labelled {token_label!r}") from exc
    try:
        sess = token.open(rw=True, user_pin=pin)
    except p11e.PinIncorrect:
        raise KeyStoreError("PKCS#11 login failed: incorrect PIN") from None
    proc.logins += 1
    proc.sessions[key] = sess
    return sess


_LABEL_RE = r"^{prefix}/master-(wrap|derive)/v([1-9][0-9]{{0,8}})$"


def check_master(key: Any, kind: MasterKind) -> None:
    """Refuse a master key that could leave the token. Runs on the worker."""
    label = key.label
    if key.key_type != _KEY_TYPES[kind]:
        raise KeyPolicyViolation(f"{label}: wrong key type {key.key_type!r}")
    checks = {
        Attribute.SENSITIVE: True,
        Attribute.ALWAYS_SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.NEVER_EXTRACTABLE: True,
        Attribute.TOKEN: True,
    }
    for attr, want in checks.items():
        if bool(key[attr]) is not want:
            raise KeyPolicyViolation(f"{label}: {attr.name} must be {want}")
    if int(key[Attribute.VALUE_LEN]) != 32:
        raise KeyPolicyViolation(f"{label}: must be 256 bits")


class Pkcs11KeyStore(KeyStore):
    """Master keys inside a PKCS#11 token. See the module docstring."""

    def __init__(
        self,
        token_label: str,
        pin: str,
        *,
        library: str = DEFAULT_LIBRARY,
        prefix: str = "plexi",
        breaker: CircuitBreaker | None = None,
        timeout: float = 10.0,
        create: bool = False,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", prefix):
            raise ValueError("prefix must be 1..32 of [A-Za-z0-9_.-]")
        self._library = library
        self._token = token_label
        self.__pin = pin
        self._prefix = prefix
        self._label_re = re.compile(_LABEL_RE.format(prefix=re.escape(prefix)))
        self.breaker = breaker or CircuitBreaker()
        self._timeout = timeout
        self._keys: dict[tuple[MasterKind, int], Any] = {}
        self._generation = -1
        self._closed = False
        self._create_missing = create
        self._call(lambda: None)  # loads (and, if asked, creates) the master keys
        self._create_missing = False

    def __repr__(self) -> str:
        return f"<Pkcs11KeyStore token={self._token!r} prefix={self._prefix!r}>"

    # -- plumbing (everything below named _w_* / _load runs on the worker) --

    def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise KeyStoreError("key store is closed")
        self.breaker.before_call()
        try:
            result = _proc.worker.call(lambda: self._w_fresh(fn), self._timeout)
        except HsmUnavailable:
            self.breaker.on_failure()
            raise
        except _DEVICE_ERRORS as exc:
            self.breaker.on_failure()
            raise HsmUnavailable(f"HSM failure: {type(exc).__name__}") from None
        except BaseException:
            self.breaker.on_success()  # the token answered; the request was wrong
            raise
        self.breaker.on_success()
        return result

    def _w_fresh(self, fn: Callable[[], T]) -> T:
        if self._generation != _proc.generation:  # first call, or first after fork
            self._keys.clear()
            self._load(self._create_missing)
        return fn()

    def _w_session(self) -> Any:
        return _session(self._library, self._token, self.__pin)

    def _load(self, create: bool) -> None:
        sess = self._w_session()
        found: dict[tuple[MasterKind, int], Any] = {}
        for obj in sess.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
            m = self._label_re.match(obj.label or "")
            if m is None:
                continue
            kind, version = MasterKind(m.group(1)), int(m.group(2))
            if (kind, version) in found:
                raise KeyPolicyViolation(f"two token objects labelled {obj.label}")
            check_master(obj, kind)
            found[(kind, version)] = obj
        self._keys = found
        self._generation = _proc.generation
        for kind in MasterKind:
            if self._active(kind) is None:
                if not create:
                    raise KeyNotFound(f"no {kind.value} master key on token {self._token!r}")
                self._w_generate(kind)

    def _active(self, kind: MasterKind) -> int | None:
        return active_version(self._keys, kind)

    def _w_key(self, kind: MasterKind, version: int | None) -> tuple[int, Any]:
        return lookup_master(self._keys, kind, version)

    def _w_generate(self, kind: MasterKind) -> int:
        v = (self._active(kind) or 0) + 1
        label = f"{self._prefix}/master-{kind.value}/v{v}"
        template: dict[Attribute, Any] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.MODIFIABLE: False,
        }
        if kind is MasterKind.WRAP:
            template.update({Attribute.ENCRYPT: True, Attribute.DECRYPT: True,
                             Attribute.WRAP: False, Attribute.UNWRAP: False,
                             Attribute.SIGN: False, Attribute.DERIVE: False})
        else:
            template.update({Attribute.SIGN: True, Attribute.VERIFY: True,
                             Attribute.ENCRYPT: False, Attribute.DECRYPT: False,
                             Attribute.DERIVE: False})
        key = self._w_session().generate_key(
            _KEY_TYPES[kind], 256, label=label, id=label.encode(), store=True, template=template
        )
        check_master(key, kind)
        self._keys[(kind, v)] = key
        return v

    # -- KeyStore --

    def derive(self, label: bytes, length: int = 32, *, version: int | None = None) -> bytes:
        check_derive_args(label, length)

        def run() -> bytes:
            _, key = self._w_key(MasterKind.DERIVE, version)
            out = b""
            counter = 1
            while len(out) < length:
                block = derive_block_input(label, length, counter)
                out += bytes(key.sign(block, mechanism=Mechanism.SHA256_HMAC))
                counter += 1
            return out[:length]

        return self._call(run)

    def wrap(self, data: bytes, aad: bytes = b"") -> bytes:
        if not isinstance(data, bytes) or not isinstance(aad, bytes):
            raise TypeError("data and aad must be bytes")
        nonce = os.urandom(NONCE_LEN)

        def run() -> bytes:
            v, key = self._w_key(MasterKind.WRAP, None)
            params = GCMParams(nonce, WRAP_AAD_PREFIX + aad, 128)
            ct = bytes(key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))
            return WRAP_HEADER.pack(WRAP_FORMAT, v) + nonce + ct

        return self._call(run)

    def unwrap(self, blob: bytes, aad: bytes = b"") -> bytes:
        version, nonce, ct = parse_wrapped(blob)

        def run() -> bytes:
            try:
                _, key = self._w_key(MasterKind.WRAP, version)
            except KeyNotFound:
                raise UnwrapError("wrapped blob failed to authenticate") from None
            params = GCMParams(nonce, WRAP_AAD_PREFIX + aad, 128)
            try:
                return bytes(key.decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=params))
            except p11e.GeneralError:
                # SoftHSM2 reports a bad GCM tag as CKR_GENERAL_ERROR: an input error here,
                # which must not let anyone trip the breaker with forged blobs.
                raise UnwrapError("wrapped blob failed to authenticate") from None
            except _DEVICE_ERRORS:
                raise
            except p11e.PKCS11Error:
                raise UnwrapError("wrapped blob failed to authenticate") from None

        return self._call(run)

    def masters(self) -> list[MasterInfo]:
        def run() -> list[MasterInfo]:
            active = {kind: self._active(kind) for kind in MasterKind}
            return [
                MasterInfo(kind, v, active[kind] == v)
                for (kind, v) in sorted(self._keys, key=lambda kv: (kv[0].value, kv[1]))
            ]

        return self._call(run)

    def rotate_master(self, kind: MasterKind) -> int:
        return self._call(lambda: self._w_generate(kind))

    def close(self) -> None:
        self._closed = True
        self._keys = {}

    # -- for tests and the policy checks they demonstrate; runs fn(session, keys) on the
    # worker. Not part of the KeyStore interface.

    def _run_on_token(self, fn: Callable[[Any, dict[tuple[MasterKind, int], Any]], T]) -> T:
        return self._call(lambda: fn(self._w_session(), dict(self._keys)))

