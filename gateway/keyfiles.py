"""Key directory on disk: the deployment root, gateway keys and certificates, auth secret.

Layout of a keys directory (secret files are 0600, written atomically)::

    root.key                 32-byte ML-DSA-65 seed (keep offline in production)
    root.pub                 1952-byte root public key; clients pin this file
    gateway-<kem>.key        32-byte hybrid KEM seed (or .key.wrapped: wrapped by a key store)
    gateway-<kem>.cert       certificate of the gateway key, signed by the root
    auth-hs256.key           32-byte HMAC secret for development tokens (`plexigate token`)
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

from crypto.cert import GatewayCertificate, RootKey
from crypto.handshake import GatewayCredential
from crypto.kem import KEMS, HybridKem, KemId

ROOT_KEY = "root.key"
ROOT_PUB = "root.pub"
AUTH_SECRET = "auth-hs256.key"  # noqa: S105 (a file name)
DEFAULT_VALIDITY_S = 365 * 24 * 3600
# Clients judge certificate validity by their own clock. Backdating not_before keeps a
# client whose clock runs behind (checklist item 8) from being refused by a fresh key.
CERT_BACKDATE_S = 2 * 24 * 3600


class KeyFileError(Exception):
    """A key file is missing or malformed (the message names the file, never its bytes)."""


def _kem_file(kem: HybridKem, suffix: str) -> str:
    return f"gateway-{kem.name.lower()}.{suffix}"


def write_secret(path: Path, data: bytes) -> None:
    """Atomic write with mode 0600 from the first byte on."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _read(path: Path, size: int | None = None) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    if size is not None and len(data) != size:
        raise KeyFileError(f"{path} has the wrong size")
    return data


def init_keys(directory: Path, validity_s: int = DEFAULT_VALIDITY_S, force: bool = False) -> None:
    """Make a root key, one gateway key per KEM with its certificate, and an auth secret."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    if (directory / ROOT_KEY).exists() and not force:
        raise KeyFileError(f"{directory} already holds keys (use --force to replace them)")
    root = RootKey.generate()
    write_secret(directory / ROOT_KEY, root.seed_bytes())
    write_public(directory / ROOT_PUB, root.public_bytes())
    now = int(time.time())
    for kem in KEMS.values():
        key = kem.generate()
        write_secret(directory / _kem_file(kem, "key"), key.seed_bytes())
        cert = root.certify(kem, key.public_bytes, now - CERT_BACKDATE_S, now + validity_s)
        write_public(directory / _kem_file(kem, "cert"), cert.to_bytes())
    write_secret(directory / AUTH_SECRET, secrets.token_bytes(32))


def load_root_public(path: Path) -> bytes:
    """A pinned root public key: a keys directory or the root.pub file itself."""
    if path.is_dir():
        path = path / ROOT_PUB
    return _read(path, 1952)


def load_auth_secret(directory: Path) -> bytes:
    return _read(directory / AUTH_SECRET, 32)


def load_credentials(directory: Path) -> dict[KemId, GatewayCredential]:
    creds: dict[KemId, GatewayCredential] = {}
    for kem in KEMS.values():
        key_path = directory / _kem_file(kem, "key")
        if not key_path.exists():
            continue
        seed = _read(key_path, 32)
        try:
            cert = GatewayCertificate.from_bytes(_read(directory / _kem_file(kem, "cert")))
            creds[kem.kem_id] = GatewayCredential(kem.from_seed(seed), cert)
        except ValueError as exc:
            raise KeyFileError(f"{key_path}: key and certificate do not match") from exc
    if not creds:
        raise KeyFileError(f"no gateway keys in {directory} (run `plexigate keys init`)")
    return creds
