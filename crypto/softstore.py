"""Software key store (the embedded default): master keys in files encrypted under a
passphrase-derived key.

Directory layout (0700), one file per master version (0600, written atomically)::

    store.json                   {"format": 1, "salt": hex, "n": 2**15, "r": 8, "p": 1}
    master-wrap-v1.key           ...
    master-derive-v1.key

A key file is ``nonce (12) || ChaCha20-Poly1305(kek, nonce, key, aad)`` with
``aad = b"plexi/softstore/v1/" + file name`` so files cannot be swapped, and
``kek = scrypt(passphrase, salt, n, r, p)`` computed once when the store opens. The highest
version of each kind is active. This store keeps master keys in process memory while open;
the PKCS#11 store (crypto/pkcs11store.py) is the one where they never leave the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from crypto.fileio import atomic_write, private_dir
from crypto.keystore import (
    NONCE_LEN,
    WRAP_AAD_PREFIX,
    WRAP_FORMAT,
    WRAP_HEADER,
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

_FILE_RE = re.compile(r"^master-(wrap|derive)-v([1-9][0-9]{0,8})\.key$")
_AAD = b"plexi/softstore/v1/"
DEFAULT_SCRYPT_N = 2**15


class WrongPassphrase(KeyStoreError):
    """A key file did not decrypt: wrong passphrase or a modified file."""


class SoftKeyStore(KeyStore):
    """Master keys in scrypt-protected files. Create with :meth:`create` or :meth:`open`."""

    def __init__(self, directory: Path, kek: bytes, *, create: bool = False) -> None:
        self._dir = Path(directory)
        self._kek = ChaCha20Poly1305(kek)
        self._lock = threading.Lock()
        self._keys: dict[tuple[MasterKind, int], bytes] = {}
        self._load(create)

    @classmethod
    def create(
        cls, directory: Path, passphrase: bytes, *, scrypt_n: int = DEFAULT_SCRYPT_N
    ) -> SoftKeyStore:
        """Create a new store with one version of each master kind."""
        directory = private_dir(Path(directory))
        meta_path = directory / "store.json"
        if meta_path.exists():
            raise KeyStoreError(f"a key store already exists in {directory}")
        meta = {"format": 1, "salt": secrets.token_hex(16), "n": scrypt_n, "r": 8, "p": 1}
        atomic_write(meta_path, json.dumps(meta).encode())
        return cls(directory, _kek(passphrase, meta), create=True)

    @classmethod
    def open(cls, directory: Path, passphrase: bytes) -> SoftKeyStore:
        meta_path = Path(directory) / "store.json"
        try:
            meta = json.loads(meta_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"no readable key store in {directory}") from exc
        return cls(Path(directory), _kek(passphrase, meta))

    def _load(self, create: bool) -> None:
        for path in sorted(self._dir.iterdir()):
            m = _FILE_RE.match(path.name)
            if m is None:
                continue
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise KeyPolicyViolation(f"{path.name} is readable by others (mode {mode:o})")
            blob = path.read_bytes()
            try:
                key = self._kek.decrypt(
                    blob[:NONCE_LEN], blob[NONCE_LEN:], _AAD + path.name.encode()
                )
            except InvalidTag:
                raise WrongPassphrase(
                    f"cannot open {path.name}: wrong passphrase or modified file"
                ) from None
            if len(key) != 32:
                raise KeyStoreError(f"{path.name}: bad key length")
            self._keys[(MasterKind(m.group(1)), int(m.group(2)))] = key
        for kind in MasterKind:
            if self._active(kind) is None:
                if not create:
                    raise KeyNotFound(f"no {kind.value} master key in {self._dir}")
                self.rotate_master(kind)

    def _active(self, kind: MasterKind) -> int | None:
        return active_version(self._keys, kind)

    def _key(self, kind: MasterKind, version: int | None) -> tuple[int, bytes]:
        with self._lock:
            return lookup_master(self._keys, kind, version)

    def derive(self, label: bytes, length: int = 32, *, version: int | None = None) -> bytes:
        check_derive_args(label, length)
        _, key = self._key(MasterKind.DERIVE, version)
        out = b""
        counter = 1
        while len(out) < length:
            block = derive_block_input(label, length, counter)
            out += hmac.new(key, block, hashlib.sha256).digest()
            counter += 1
        return out[:length]

    def wrap(self, data: bytes, aad: bytes = b"") -> bytes:
        if not isinstance(data, bytes) or not isinstance(aad, bytes):
            raise TypeError("data and aad must be bytes")
        v, key = self._key(MasterKind.WRAP, None)
        nonce = os.urandom(NONCE_LEN)
        header = WRAP_HEADER.pack(WRAP_FORMAT, v)
        return header + nonce + AESGCM(key).encrypt(nonce, data, WRAP_AAD_PREFIX + aad)

    def unwrap(self, blob: bytes, aad: bytes = b"") -> bytes:
        version, nonce, ct = parse_wrapped(blob)
        try:
            _, key = self._key(MasterKind.WRAP, version)
        except KeyNotFound:
            raise UnwrapError("wrapped blob failed to authenticate") from None
        try:
            return AESGCM(key).decrypt(nonce, ct, WRAP_AAD_PREFIX + aad)
        except InvalidTag:
            raise UnwrapError("wrapped blob failed to authenticate") from None

    def masters(self) -> list[MasterInfo]:
        with self._lock:
            active = {kind: self._active(kind) for kind in MasterKind}
            return [
                MasterInfo(kind, v, active[kind] == v) for (kind, v) in sorted(
                    self._keys, key=lambda kv: (kv[0].value, kv[1])
                )
            ]

    def rotate_master(self, kind: MasterKind) -> int:
        with self._lock:
            v = (self._active(kind) or 0) + 1
            name = f"master-{kind.value}-v{v}.key"
            key = secrets.token_bytes(32)
            nonce = os.urandom(NONCE_LEN)
            blob = nonce + self._kek.encrypt(nonce, key, _AAD + name.encode())
            atomic_write(self._dir / name, blob)
            self._keys[(kind, v)] = key
            return v

    def close(self) -> None:
        with self._lock:
            self._keys.clear()


def _kek(passphrase: bytes, meta: dict[str, object]) -> bytes:
    if not isinstance(passphrase, bytes) or not passphrase:
        raise KeyStoreError("an empty passphrase is refused")
    try:
        salt = bytes.fromhex(str(meta["salt"]))
        n, r, p = int(str(meta["n"])), int(str(meta["r"])), int(str(meta["p"]))
    except (KeyError, ValueError) as exc:
        raise KeyStoreError("store.json is malformed") from exc
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)
