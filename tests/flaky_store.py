"""A key store whose HSM 'goes away' on demand (tests of rotation during an outage)."""

from __future__ import annotations

from crypto.keystore import HsmUnavailable, KeyStore, MasterInfo, MasterKind


class FlakyStore(KeyStore):
    """Delegates to ``inner`` until ``down`` is set, then fails like an open breaker."""

    def __init__(self, inner: KeyStore) -> None:
        self.inner, self.down = inner, False

    def _check(self) -> None:
        if self.down:
            raise HsmUnavailable("HSM circuit breaker is open", retry_after=30.0)

    def derive(self, label: bytes, length: int = 32, *, version: int | None = None) -> bytes:
        self._check()
        return self.inner.derive(label, length, version=version)

    def wrap(self, data: bytes, aad: bytes = b"") -> bytes:
        self._check()
        return self.inner.wrap(data, aad)

    def unwrap(self, blob: bytes, aad: bytes = b"") -> bytes:
        self._check()
        return self.inner.unwrap(blob, aad)

    def masters(self) -> list[MasterInfo]:
        return self.inner.masters()

    def rotate_master(self, kind: MasterKind) -> int:
        self._check()
        return self.inner.rotate_master(kind)

    def close(self) -> None:
        self.inner.close()
