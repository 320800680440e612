"""Versioned working keys with a stable key id, rotated by time and by use.

A :class:`RotatingKey` is an AES-256-GCM key with versions v1, v2, ...; exactly one is
``active`` (seals), others are ``enabled`` (open only), ``disabled`` (refused, material
kept wrapped) or ``destroyed`` (material erased). Each version's 32 random bytes rest only
wrapped by the key store (``KeyStore.wrap``, AAD ``plexi/rk/<key id>/v<n>``); they are
unwrapped once per process and kept in memory, so sealing and opening keep working while
the HSM is unavailable.

State file (JSON, written atomically, 0600)::

    {"key_id": str, "alg": "aes-256-gcm", "versions": [
        {"version": n, "state": "active|enabled|disabled|destroyed|pending",
         "created": unix seconds, "uses_reserved": int, "wrapped": hex | null}, ...]}

Sealed blob: ``0x01 | version (u32 BE) | nonce (12) | ciphertext || tag (16)``,
AAD = ``b"plexi/rk/v1/" + key_id + b"/" + u32(version) + aad``. The version picks the key;
nothing is tried.

Rotation policy: a version rotates when it is ``max_age`` seconds old or has sealed
``max_uses`` messages (at most 2^32, the random-nonce AES-GCM bound). Uses are reserved in
blocks of ``use_block`` and the reservation is persisted before use, so a crash can only
over-count, never under-count. ``seal`` rotates by itself before exceeding ``max_uses``.

Rotation is atomic. Steps (each a hook point for crash tests)::

    "generated"        new material made and wrapped (nothing on disk yet)
    "pending-written"  state file has the new version as "pending" (old one still active)
    "activated"        state file has the new version active, the old one enabled
    "done"             audit record written

The state file changes only through ``os.replace``, so a crash leaves either the old or the
new file. On open, a leftover ``pending`` version is rolled back (removed). Opening a state
that has no active version, or two, is refused.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.audit import AuditLog
from crypto.fileio import atomic_write
from crypto.keystore import KeyDestroyed, KeyDisabled, KeyNotFound, KeyStore, KeyStoreError

MAX_AES_GCM_USES = 2**32
_SEAL_FORMAT = 0x01
_HEADER = struct.Struct(">BI")
_NONCE = 12
ROTATION_STEPS = ("generated", "pending-written", "activated", "done")


class OpenError(KeyStoreError):
    """A sealed blob failed to authenticate. Carries no reason on purpose."""


class VersionState(Enum):
    PENDING = "pending"
    ACTIVE = "active"
    ENABLED = "enabled"
    DISABLED = "disabled"
    DESTROYED = "destroyed"


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    max_age: float = 7 * 86400.0
    max_uses: int = MAX_AES_GCM_USES
    keep_enabled: int = 3  # versions that still open: the active one plus this many - 1
    use_block: int = 4096

    def __post_init__(self) -> None:
        if not 1 <= self.max_uses <= MAX_AES_GCM_USES:
            raise ValueError("max_uses must be in 1..2^32 for an AES-GCM key")
        if self.max_age <= 0 or self.keep_enabled < 1 or self.use_block < 1:
            raise ValueError("max_age > 0, keep_enabled >= 1 and use_block >= 1 required")


@dataclass(frozen=True, slots=True)
class KeyVersion:
    version: int
    state: VersionState
    created: float
    uses_reserved: int
    wrapped: bytes | None

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "state": self.state.value, "created": self.created,
                "uses_reserved": self.uses_reserved,
                "wrapped": self.wrapped.hex() if self.wrapped is not None else None}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KeyVersion:
        w = d.get("wrapped")
        return cls(int(d["version"]), VersionState(d["state"]), float(d["created"]),
                   int(d["uses_reserved"]), bytes.fromhex(w) if w is not None else None)


@dataclass(frozen=True, slots=True)
class KeyState:
    key_id: str
    versions: tuple[KeyVersion, ...]

    @property
    def active(self) -> KeyVersion:
        act = [v for v in self.versions if v.state is VersionState.ACTIVE]
        if len(act) != 1:
            raise KeyStoreError(f"{self.key_id}: {len(act)} active versions (must be 1)")
        return act[0]

    def get(self, version: int) -> KeyVersion:
        for v in self.versions:
            if v.version == version:
                return v
        raise KeyNotFound(f"{self.key_id}: no version {version}")

    def with_version(self, kv: KeyVersion) -> KeyState:
        others = tuple(v for v in self.versions if v.version != kv.version)
        return replace(self, versions=tuple(sorted((*others, kv), key=lambda v: v.version)))

    def to_bytes(self) -> bytes:
        return json.dumps({"key_id": self.key_id, "alg": "aes-256-gcm",
                           "versions": [v.to_json() for v in self.versions]},
                          indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyState:
        try:
            d = json.loads(data)
            if d.get("alg") != "aes-256-gcm":
                raise ValueError("unsupported alg")
            return cls(str(d["key_id"]),
                       tuple(KeyVersion.from_json(v) for v in d["versions"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"key state file malformed: {exc}") from None


class RotatingKey:
    """A versioned AEAD key. Thread-safe. Use :meth:`create` or :meth:`load`."""

    def __init__(
        self,
        store: KeyStore,
        path: Path,
        state: KeyState,
        policy: RotationPolicy,
        *,
        clock: Callable[[], float] = time.time,
        audit: AuditLog | None = None,
        hook: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self.path = Path(path)
        self._state = state
        self.policy = policy
        self._clock = clock
        self._audit = audit
        self._hook = hook or (lambda _step: None)
        self._lock = threading.RLock()
        self._material: dict[int, AESGCM] = {}
        self._uses = state.active.uses_reserved  # conservative after a restart

    # -- construction --

    @classmethod
    def create(cls, store: KeyStore, path: Path, key_id: str,
               policy: RotationPolicy | None = None, **kw: Any) -> RotatingKey:
        path = Path(path)
        if path.exists():
            raise KeyStoreError(f"{path} exists")
        if not key_id or len(key_id) > 64 or not key_id.isascii() or "/" in key_id:
            raise ValueError("key_id must be 1..64 ASCII characters without '/'")
        clock: Callable[[], float] = kw.get("clock", time.time)
        wrapped = store.wrap(os.urandom(32), _wrap_aad(key_id, 1))
        state = KeyState(key_id, (KeyVersion(1, VersionState.ACTIVE, clock(), 0, wrapped),))
        atomic_write(path, state.to_bytes())
        rk = cls(store, path, state, policy or RotationPolicy(), **kw)
        if rk._audit is not None:
            rk._audit.append("generate", key=key_id, version=1)
        return rk

    @classmethod
    def load(cls, store: KeyStore, path: Path, policy: RotationPolicy | None = None,
             **kw: Any) -> RotatingKey:
        """Load the state; roll back an interrupted rotation (a ``pending`` version)."""
        path = Path(path)
        state = KeyState.from_bytes(path.read_bytes())
        pending = [v for v in state.versions if v.state is VersionState.PENDING]
        if pending:
            state = replace(state, versions=tuple(
                v for v in state.versions if v.state is not VersionState.PENDING))
            state.active  # noqa: B018 - validates before we write
            atomic_write(path, state.to_bytes())
        state.active  # noqa: B018 - exactly one active version, or KeyStoreError
        rk = cls(store, path, state, policy or RotationPolicy(), **kw)
        if pending and rk._audit is not None:
            rk._audit.append("rotate", "rolled-back", key=state.key_id,
                             version=pending[0].version)
        return rk

    # -- introspection --

    @property
    def key_id(self) -> str:
        return self._state.key_id

    @property
    def state(self) -> KeyState:
        return self._state

    @property
    def active_version(self) -> int:
        return self._state.active.version

    @property
    def uses(self) -> int:
        return self._uses

    # -- AEAD --

    def _aead(self, kv: KeyVersion) -> AESGCM:
        if kv.state is VersionState.DESTROYED or kv.wrapped is None:
            raise KeyDestroyed(f"{self.key_id} v{kv.version} is destroyed")
        if kv.state in (VersionState.DISABLED, VersionState.PENDING):
            raise KeyDisabled(f"{self.key_id} v{kv.version} is {kv.state.value}")
        aead = self._material.get(kv.version)
        if aead is None:
            raw = self._store.unwrap(kv.wrapped, _wrap_aad(self.key_id, kv.version))
            aead = AESGCM(raw)
            self._material[kv.version] = aead
        return aead

    def _aad(self, version: int, aad: bytes) -> bytes:
        return b"plexi/rk/v1/" + self.key_id.encode() + b"/" + struct.pack(">I", version) + aad

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        with self._lock:
            if self._uses >= self.policy.max_uses:
                self.rotate(reason="uses")
            kv = self._state.active
            if self._uses >= kv.uses_reserved:
                reserve = min(kv.uses_reserved + self.policy.use_block, self.policy.max_uses)
                kv = replace(kv, uses_reserved=reserve)
                self._commit(self._state.with_version(kv))
            aead = self._aead(kv)
            self._uses += 1
        nonce = os.urandom(_NONCE)
        return (_HEADER.pack(_SEAL_FORMAT, kv.version) + nonce
                + aead.encrypt(nonce, plaintext, self._aad(kv.version, aad)))

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        if len(blob) < _HEADER.size + _NONCE + 16:
            raise OpenError("sealed blob failed to authenticate")
        fmt, version = _HEADER.unpack_from(blob)
        if fmt != _SEAL_FORMAT:
            raise OpenError("sealed blob failed to authenticate")
        with self._lock:
            kv = self._state.get(version)
            aead = self._aead(kv)
        nonce = blob[_HEADER.size:_HEADER.size + _NONCE]
        try:
            return aead.decrypt(nonce, blob[_HEADER.size + _NONCE:], self._aad(version, aad))
        except InvalidTag:
            raise OpenError("sealed blob failed to authenticate") from None

    # -- rotation --

    def due(self, now: float | None = None) -> str | None:
        """Why the active version should rotate now ("age" / "uses"), or None."""
        now = self._clock() if now is None else now
        kv = self._state.active
        if now - kv.created >= self.policy.max_age:
            return "age"
        if self._uses >= self.policy.max_uses:
            return "uses"
        return None

    def maybe_rotate(self, now: float | None = None) -> int | None:
        """Rotate if the policy says so; return the new version or None."""
        with self._lock:
            reason = self.due(now)
            return self.rotate(reason=reason, now=now) if reason else None

    def rotate(self, *, reason: str = "manual", now: float | None = None) -> int:
        """Make a new active version; the old one stays enabled (see keep_enabled)."""
        with self._lock:
            now = self._clock() if now is None else now
            old = self._state.active
            new_v = max(v.version for v in self._state.versions) + 1
            if self._audit is not None:
                self._audit.append("rotate", "intent", key=self.key_id, version=new_v,
                                   detail={"reason": reason})
            raw = os.urandom(32)
            wrapped = self._store.wrap(raw, _wrap_aad(self.key_id, new_v))
            self._hook("generated")
            pending = KeyVersion(new_v, VersionState.PENDING, now, 0, wrapped)
            self._commit(self._state.with_version(pending))
            self._hook("pending-written")
            state = self._state.with_version(replace(old, state=VersionState.ENABLED))
            state = state.with_version(replace(pending, state=VersionState.ACTIVE))
            state = _retire(state, self.policy.keep_enabled)
            self._commit(state)
            self._material[new_v] = AESGCM(raw)
            self._uses = 0
            self._hook("activated")
            if self._audit is not None:
                self._audit.append("rotate", "ok", key=self.key_id, version=new_v,
                                   detail={"reason": reason, "previous": old.version})
            self._hook("done")
            return new_v

    def disable(self, version: int) -> None:
        self._set_state(version, VersionState.DISABLED, "disable")

    def enable(self, version: int) -> None:
        self._set_state(version, VersionState.ENABLED, "enable")

    def destroy(self, version: int) -> None:
        """Erase a non-active version's wrapped material for good."""
        self._set_state(version, VersionState.DESTROYED, "destroy")

    def _set_state(self, version: int, to: VersionState, op: str) -> None:
        with self._lock:
            kv = self._state.get(version)
            if kv.state is VersionState.ACTIVE:
                raise KeyStoreError(f"{self.key_id} v{version} is active; rotate first")
            if kv.state is VersionState.DESTROYED:
                raise KeyDestroyed(f"{self.key_id} v{version} is destroyed")
            if self._audit is not None:
                self._audit.append(op, "intent", key=self.key_id, version=version)
            wrapped = None if to is VersionState.DESTROYED else kv.wrapped
            self._commit(self._state.with_version(replace(kv, state=to, wrapped=wrapped)))
            if to in (VersionState.DISABLED, VersionState.DESTROYED):
                self._material.pop(version, None)
            if self._audit is not None:
                self._audit.append(op, "ok", key=self.key_id, version=version)

    def _commit(self, state: KeyState) -> None:
        atomic_write(self.path, state.to_bytes())
        self._state = state


def _retire(state: KeyState, keep: int) -> KeyState:
    """Disable enabled versions beyond the newest ``keep`` usable ones."""
    usable = sorted((v for v in state.versions
                     if v.state in (VersionState.ACTIVE, VersionState.ENABLED)),
                    key=lambda v: v.version, reverse=True)
    for kv in usable[keep:]:
        state = state.with_version(replace(kv, state=VersionState.DISABLED))
    return state


def _wrap_aad(key_id: str, version: int) -> bytes:
    return f"plexi/rk/{key_id}/v{version}".encode()
