"""A key store whose every operation leaves an audit record before its result is returned.

``AuditedKeyStore(inner, log)`` implements :class:`KeyStore`. Each call runs the inner
operation, then appends ``op, outcome, master kind/version, label/length`` to the audit log;
only if that append succeeded does the result reach the caller. If the log cannot be
written, :class:`AuditWriteError` is raised and the result is dropped. Mutating operations
(``rotate_master``) write an ``intent`` record first and are not attempted if that fails.
Failures are recorded with their exception type only, never their message or any bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from crypto.audit import AuditLog
from crypto.keystore import KeyStore, MasterInfo, MasterKind

T = TypeVar("T")


def label_text(label: bytes) -> str:
    """A label for the audit log: printable ASCII as is, anything else as hex."""
    if label.isascii() and all(32 <= b < 127 for b in label) and len(label) <= 96:
        return label.decode()
    return "hex:" + label[:48].hex()


class AuditedKeyStore(KeyStore):
    def __init__(self, inner: KeyStore, log: AuditLog) -> None:
        self.inner = inner
        self.log = log

    def _audited(
        self, op: str, fn: Callable[[], T], *, key: str, version: int | None = None,
        detail: dict[str, str | int] | None = None,
    ) -> T:
        try:
            result = fn()
        except Exception as exc:
            self.log.append(op, "error", key=key, version=version,
                            detail={**(detail or {}), "error": type(exc).__name__})
            raise
        self.log.append(op, "ok", key=key, version=version, detail=detail)
        return result

    def derive(self, label: bytes, length: int = 32, *, version: int | None = None) -> bytes:
        return self._audited(
            "derive", lambda: self.inner.derive(label, length, version=version),
            key="derive", version=version,
            detail={"label": label_text(label), "length": length},
        )

    def wrap(self, data: bytes, aad: bytes = b"") -> bytes:
        return self._audited("wrap", lambda: self.inner.wrap(data, aad), key="wrap",
                             detail={"length": len(data), "aad": label_text(aad) if aad else ""})

    def unwrap(self, blob: bytes, aad: bytes = b"") -> bytes:
        version = int.from_bytes(blob[1:5], "big") if len(blob) >= 5 else None
        return self._audited("unwrap", lambda: self.inner.unwrap(blob, aad), key="wrap",
                             version=version,
                             detail={"length": len(blob), "aad": label_text(aad) if aad else ""})

    def masters(self) -> list[MasterInfo]:
        return self.inner.masters()

    def rotate_master(self, kind: MasterKind) -> int:
        self.log.append("rotate-master", "intent", key=kind.value)
        version = self._audited("rotate-master", lambda: self.inner.rotate_master(kind),
                                key=kind.value)
        self.log.append("generate", "ok", key=kind.value, version=version)
        return version

    def close(self) -> None:
        self.inner.close()
