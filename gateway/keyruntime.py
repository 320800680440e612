"""The gateway's key store at run time: working keys it rotates while serving.

When the gateway runs with a key store (`plexigate serve --keystore soft|pkcs11`), it holds:

- the store (software or PKCS#11, usually behind :class:`crypto.audited.AuditedKeyStore`)
  that unwrapped the long-term keys at startup (see :mod:`gateway.keyfiles`);
- the **storage key**: a :class:`crypto.rotation.RotatingKey` (key id ``gateway-storage``,
  state file ``<keys>/storage-key.json``) that seals what the gateway keeps of user data,
  today the per-channel history entries (:class:`gateway.channels.ChannelHub`);
- a :class:`KeyRotator`: an asyncio task that every ``interval`` seconds calls
  ``maybe_rotate(now)`` on each rotating key in a thread executor (a PKCS#11 call blocks),
  logs rotations (key id and version only) and keeps going through
  :class:`crypto.keystore.HsmUnavailable` (the next tick retries; the store's circuit
  breaker makes the failing ticks cheap). Sessions are never touched by a rotation: they
  run on their own handshake keys; history sealed under an older version keeps opening
  while that version is enabled.

At startup the active storage-key version is unwrapped once (a seal/open probe), so sealing
keeps working if the HSM becomes unavailable later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from crypto.audit import AuditLog
from crypto.keystore import HsmUnavailable, KeyStore
from crypto.rotation import RotatingKey, RotationPolicy

log = logging.getLogger("plexigate.keys")

STORAGE_KEY_FILE = "storage-key.json"
STORAGE_KEY_ID = "gateway-storage"
DEFAULT_ROTATION_INTERVAL_S = 60.0


class KeyRotator:
    """Periodic ``maybe_rotate`` of rotating keys on the running event loop."""

    def __init__(
        self,
        keys: Sequence[RotatingKey],
        interval: float = DEFAULT_ROTATION_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0:
            raise ValueError("rotation interval must be > 0")
        self.keys = list(keys)
        self.interval = interval
        self.clock = clock
        self.ticks = 0
        self.rotations = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> list[tuple[str, int]]:
        """One pass: rotate what is due. Returns (key id, new version) of each rotation.
        Never raises for a key-store failure: it is logged and retried on the next tick."""
        loop = asyncio.get_running_loop()
        rotated: list[tuple[str, int]] = []
        self.ticks += 1
        for rk in self.keys:
            try:
                new = await loop.run_in_executor(None, rk.maybe_rotate, self.clock())
            except HsmUnavailable as exc:
                self.failures += 1
                log.warning("key %s: rotation deferred, HSM unavailable (%s); retrying in %.0fs",
                            rk.key_id, exc, self.interval)
                continue
            except Exception as exc:  # keep serving whatever went wrong; next tick retries
                self.failures += 1
                log.error("key %s: rotation failed (%s); retrying in %.0fs",
                          rk.key_id, type(exc).__name__, self.interval)
                continue
            if new is not None:
                self.rotations += 1
                rotated.append((rk.key_id, new))
                log.info("key %s rotated to v%d", rk.key_id, new)
        return rotated

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.tick()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="key-rotator")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class KeyRuntime:
    """The key store, audit log, storage key and rotator of one running gateway."""

    def __init__(
        self, store: KeyStore, audit: AuditLog | None, storage: RotatingKey,
        rotator: KeyRotator,
    ) -> None:
        self.store = store
        self.audit = audit
        self.storage = storage
        self.rotator = rotator
        self._closed = False

    @classmethod
    def open(
        cls,
        keys_dir: Path,
        store: KeyStore,
        audit: AuditLog | None = None,
        *,
        storage_path: Path | None = None,
        policy: RotationPolicy | None = None,
        interval: float = DEFAULT_ROTATION_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> KeyRuntime:
        """Load (or create) the storage key and unwrap its active version now."""
        path = storage_path or Path(keys_dir) / STORAGE_KEY_FILE
        policy = policy or RotationPolicy()
        if path.exists():
            storage = RotatingKey.load(store, path, policy, audit=audit, clock=clock)
        else:
            storage = RotatingKey.create(store, path, STORAGE_KEY_ID, policy, audit=audit,
                                         clock=clock)
            log.info("created storage key %s v1 (%s)", storage.key_id, path)
        storage.open(storage.seal(b"probe", b"startup"), b"startup")
        log.info("storage key %s active v%d; rotation check every %.0fs",
                 storage.key_id, storage.active_version, interval)
        return cls(store, audit, storage, KeyRotator([storage], interval, clock))

    def start(self) -> None:
        self.rotator.start()

    async def aclose(self) -> None:
        """Stop rotating, close the audit log (final checkpoint) and the store."""
        await self.rotator.stop()
        if self._closed:
            return
        self._closed = True
        try:
            if self.audit is not None:
                self.audit.close()
        finally:
            self.store.close()
