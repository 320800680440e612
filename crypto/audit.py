"""Tamper-evident audit log: hash-chained JSON lines with signed checkpoints.

Record (one JSON object per line, UTF-8, keys sorted, no spaces)::

    {"seq": n, "ts": unix seconds, "op": "derive", "outcome": "ok" | "error" | "intent",
     "key": "wrap" | "derive" | key id, "version": int | null,
     "detail": {str: str | int}, "prev": hex(hash of record n-1, or 64 zeros), "hash": hex}

    hash = SHA-256(b"plexi/audit/v1\\n" || canonical JSON of the record without "hash"/"sig")

A checkpoint is a record with ``op = "checkpoint"``, ``detail = {"kid": key id}`` and an extra
``"sig"``: ML-DSA-65 over ``b"plexi/audit/checkpoint/v1\\n" || bytes.fromhex(hash)``, made by
the audit key. Checkpoints are part of the chain. The latest checkpoint is also written on
its own to ``<log>.ckpt`` (atomic), so cutting records off the end of the log, checkpoint
included, is still detected.

:func:`verify_log` walks the log and raises :class:`AuditVerifyError` with the index of the
first bad line: unparsable or truncated line, wrong ``seq`` (deleted or reordered), broken
``prev`` link, wrong ``hash`` (modified), bad checkpoint signature (forged), or a log shorter
than, or disagreeing with, the ``.ckpt`` checkpoint. Records after the last checkpoint are
chained but unsigned: they are reported as ``unanchored``.

Records never carry key bytes, PINs or wrapped data: ``detail`` values are limited to short
strings and ints, and callers pass only names, labels, versions, lengths and error types.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

from crypto.fileio import atomic_write
from crypto.keystore import AuditVerifyError, AuditWriteError

GENESIS = "0" * 64
_HASH_PREFIX = b"plexi/audit/v1\n"
_SIG_PREFIX = b"plexi/audit/checkpoint/v1\n"
MAX_DETAIL_STR = 128

Detail = Mapping[str, str | int]


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return hashlib.sha256(_HASH_PREFIX + _canonical(body)).hexdigest()


class AuditSigner:
    """The audit key (ML-DSA-65), from a 32-byte seed. Keep the seed wrapped by the key store."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("audit key seed must be 32 bytes")
        self._key = MLDSA65PrivateKey.from_seed_bytes(seed)

    @classmethod
    def generate(cls) -> tuple[AuditSigner, bytes]:
        """A new signer and its seed (wrap the seed before it touches disk)."""
        seed = os.urandom(32)
        return cls(seed), seed

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    def key_id(self) -> str:
        return key_id(self.public_bytes())

    def sign_hash(self, hex_hash: str) -> str:
        return self._key.sign(_SIG_PREFIX + bytes.fromhex(hex_hash)).hex()


def key_id(public_bytes: bytes) -> str:
    return hashlib.sha256(public_bytes).hexdigest()[:16]


def _check_detail(detail: Detail) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for k, v in detail.items():
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise TypeError(f"audit detail {k!r} must be str or int")
        if isinstance(v, str) and len(v) > MAX_DETAIL_STR:
            raise ValueError(f"audit detail {k!r} too long")
        out[str(k)] = v
    return out


class AuditLog:
    """Append-only writer. Thread-safe. Every append is written (and by default fsynced)
    before it returns; any I/O failure raises :class:`AuditWriteError` and the log refuses
    further writes (the caller must refuse the operation it was recording).

    Several processes may write one log (a running gateway and an operator's `keys rotate`
    or `token` command): each write holds an exclusive ``flock`` on the log and, if the file
    grew since this writer's last write, re-reads the tail first, so the chain stays
    linear."""

    def __init__(
        self,
        path: Path,
        signer: AuditSigner,
        *,
        checkpoint_every: int = 64,
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.checkpoint_path = self.path.with_name(self.path.name + ".ckpt")
        self._signer = signer
        self._every = checkpoint_every
        self._fsync = fsync
        self._clock = clock
        self._lock = threading.Lock()
        self._broken = False
        self._seq, self._head, self._since_ckpt = self._tail()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._fd: int | None = fd
            self._size = os.fstat(fd).st_size
        except OSError as exc:
            raise AuditWriteError(f"cannot open audit log: {exc.strerror}") from None

    def _tail(self) -> tuple[int, str, int]:
        """(next seq, head hash, records since last checkpoint) from the existing log."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0, GENESIS, 0
        lines = data.splitlines()
        if not lines:
            return 0, GENESIS, 0
        if not data.endswith(b"\n"):
            raise AuditWriteError("audit log ends in a partial record; run `audit verify`")
        since = 0
        for raw in reversed(lines):
            if json.loads(raw).get("op") == "checkpoint":
                break
            since += 1
        last = json.loads(lines[-1])
        return int(last["seq"]) + 1, str(last["hash"]), since

    def append(
        self,
        op: str,
        outcome: str = "ok",
        *,
        key: str = "",
        version: int | None = None,
        detail: Detail | None = None,
    ) -> int:
        """Write one record; return its seq. Raises AuditWriteError if it could not."""
        clean = _check_detail(detail or {})
        with self._lock:
            seq = self._write(op, outcome, key, version, clean, sign=False)
            self._since_ckpt += 1
            if self._since_ckpt >= self._every:
                self._checkpoint_locked()
            return seq

    def checkpoint(self) -> int:
        """Write a signed checkpoint now (e.g. at shutdown); return its seq."""
        with self._lock:
            return self._checkpoint_locked()

    def _checkpoint_locked(self) -> int:
        seq = self._write("checkpoint", "ok", "audit", None, {"kid": self._signer.key_id()},
                          sign=True)
        self._since_ckpt = 0
        return seq

    def _write(
        self, op: str, outcome: str, key: str, version: int | None,
        detail: dict[str, str | int], *, sign: bool,
    ) -> int:
        if self._broken or self._fd is None:
            raise AuditWriteError("audit log is not writable; operation refused")
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise AuditWriteError(f"cannot lock audit log: {exc.strerror}") from None
        try:
            return self._write_locked(op, outcome, key, version, detail, sign=sign)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _write_locked(
        self, op: str, outcome: str, key: str, version: int | None,
        detail: dict[str, str | int], *, sign: bool,
    ) -> int:
        assert self._fd is not None
        try:
            size = os.fstat(self._fd).st_size
        except OSError as exc:
            self._broken = True
            raise AuditWriteError(f"audit write failed: {exc.strerror}") from None
        if size != self._size:  # another writer appended: continue its chain
            self._seq, self._head, self._since_ckpt = self._tail()
        record: dict[str, Any] = {
            "seq": self._seq, "ts": round(self._clock(), 3), "op": op, "outcome": outcome,
            "key": key, "version": version, "detail": detail, "prev": self._head,
        }
        record["hash"] = record_hash(record)
        if sign:
            record["sig"] = self._signer.sign_hash(record["hash"])
        line = _canonical(record) + b"\n"
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
            if self._fsync:
                os.fsync(self._fd)
            if sign:
                atomic_write(self.checkpoint_path, line)
        except OSError as exc:
            self._broken = True
            raise AuditWriteError(f"audit write failed: {exc.strerror}") from None
        self._seq += 1
        self._head = record["hash"]
        self._size = size + len(line)
        return int(record["seq"])

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                if not self._broken and self._since_ckpt:
                    try:
                        self._checkpoint_locked()
                    except AuditWriteError:
                        pass
                os.close(self._fd)
                self._fd = None


@dataclass(frozen=True, slots=True)
class VerifyResult:
    records: int
    checkpoints: int
    anchored_through: int  # seq of the last signed checkpoint, -1 if none
    unanchored: int  # records after it (chained but not yet signed)


def verify_log(log: Path, public_key: bytes, checkpoint: Path | None = None) -> VerifyResult:
    """Verify the chain and checkpoints of ``log``; raise AuditVerifyError at the first bad
    line. ``checkpoint`` defaults to ``<log>.ckpt``; it must exist when the log does."""
    pub = MLDSA65PublicKey.from_public_bytes(public_key)
    kid = key_id(public_key)
    data = Path(log).read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        raise AuditVerifyError("truncated record (no final newline)", len(lines) - 1)
    prev = GENESIS
    last_ckpt = -1
    ckpts = 0
    hashes: list[str] = []
    for i, raw in enumerate(lines):
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict):
                raise ValueError
        except ValueError:
            raise AuditVerifyError("unparsable or truncated record", i) from None
        if rec.get("seq") != i:
            raise AuditVerifyError(f"sequence {rec.get('seq')!r} where {i} expected "
                                   "(record deleted, inserted or reordered)", i)
        if rec.get("prev") != prev:
            raise AuditVerifyError("chain link broken (record deleted, reordered or "
                                   "modified before it)", i)
        if rec.get("hash") != record_hash(rec):
            raise AuditVerifyError("record hash mismatch (record modified)", i)
        if rec.get("op") == "checkpoint":
            _verify_sig(pub, kid, rec, i)
            last_ckpt = i
            ckpts += 1
        elif "sig" in rec:
            raise AuditVerifyError("signature on a non-checkpoint record", i)
        prev = rec["hash"]
        hashes.append(prev)
    ckpt_path = checkpoint or Path(log).with_name(Path(log).name + ".ckpt")
    if ckpt_path.exists():
        try:
            ck = json.loads(ckpt_path.read_bytes())
            seq = int(ck["seq"])
        except (ValueError, KeyError, TypeError):
            raise AuditVerifyError("checkpoint file unparsable", len(lines)) from None
        if ck.get("hash") != record_hash(ck) or ck.get("op") != "checkpoint":
            raise AuditVerifyError("checkpoint file modified", min(seq, len(lines)))
        _verify_sig(pub, kid, ck, min(seq, len(lines)))
        if seq >= len(lines):
            raise AuditVerifyError(
                f"log truncated: signed checkpoint covers record {seq}, log has "
                f"{len(lines)} records", len(lines))
        if hashes[seq] != ck["hash"]:
            raise AuditVerifyError("record differs from the signed checkpoint file", seq)
    elif lines:
        raise AuditVerifyError("checkpoint file missing", 0)
    return VerifyResult(len(lines), ckpts, last_ckpt, len(lines) - 1 - last_ckpt)


def _verify_sig(pub: MLDSA65PublicKey, kid: str, rec: Mapping[str, Any], i: int) -> None:
    detail = rec.get("detail")
    if not isinstance(detail, dict) or detail.get("kid") != kid:
        raise AuditVerifyError("checkpoint by an unknown audit key", i)
    try:
        pub.verify(bytes.fromhex(str(rec.get("sig", ""))), _SIG_PREFIX + bytes.fromhex(
            str(rec["hash"])))
    except (InvalidSignature, ValueError):
        raise AuditVerifyError("checkpoint signature invalid (forged checkpoint)", i) from None
