"""Key directory on disk: the deployment root, gateway keys and certificates, auth secret.

Layout of a keys directory (secret files are 0600, written atomically)::

    root.key                 32-byte ML-DSA-65 seed (keep offline in production)
    root.pub                 1952-byte root public key; clients pin this file
    gateway-<kem>.key        32-byte hybrid KEM seed (or .key.wrapped: wrapped by a key store)
    gateway-<kem>.cert       certificate of the gateway key, signed by the root
    auth-hs256.key           32-byte HMAC secret for development tokens (`plexigate token`)

With a key store (``init_keys(..., store=...)``, `plexigate keys init --keystore ...`) every
secret file rests only wrapped: ``root.key.wrapped``, ``gateway-<kem>.key.wrapped`` and
``auth-hs256.key.wrapped`` hold ``KeyStore.wrap(secret, aad=<role>)``, where the AAD binds the
file's role (``gateway/root``, ``gateway/lt/<kem name>``, ``gateway/auth/hs256``), so a blob
copied over another role's file does not unwrap. Loading prefers the ``.wrapped`` file and
needs the store. Without a store the plaintext 0600 files are written: a development mode.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

from crypto.cert import GatewayCertificate, RootKey
from crypto.errors import CertificateError
from crypto.handshake import GatewayCredential
from crypto.kem import KEMS, HybridKem, KemId
from crypto.keystore import KeyStore, UnwrapError

ROOT_KEY = "root.key"
ROOT_PUB = "root.pub"
AUTH_SECRET = "auth-hs256.key"  # noqa: S105 (a file name)
DEFAULT_VALIDITY_S = 365 * 24 * 3600
# Clients judge certificate validity by their own clock. Backdating not_before keeps a
# client whose clock runs behind (checklist item 8) from being refused by a fresh key.
CERT_BACKDATE_S = 2 * 24 * 3600
WRAPPED = ".wrapped"
ROOT_AAD = b"gateway/root"
AUTH_AAD = b"gateway/auth/hs256"
TICKET_SECRET = "ticket.key"  # noqa: S105 (a file name)
TICKET_AAD = b"gateway/ticket"


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


def lt_aad(kem: HybridKem) -> bytes:
    """AAD binding a wrapped long-term KEM seed to its role and KEM."""
    return b"gateway/lt/" + kem.name.lower().encode()


def _secret_roles() -> list[tuple[str, bytes, int]]:
    """(file name, wrap AAD, size) of every secret file of a keys directory."""
    roles = [(ROOT_KEY, ROOT_AAD, 32), (AUTH_SECRET, AUTH_AAD, 32),
             (TICKET_SECRET, TICKET_AAD, 32)]
    roles += [(_kem_file(kem, "key"), lt_aad(kem), 32) for kem in KEMS.values()]
    return roles


def shred(path: Path) -> None:
    """Overwrite a file with random bytes, fsync, unlink, fsync the directory. Best effort
    against casual recovery only: SSDs and copy-on-write or journaling file systems may keep
    old blocks (use full-disk encryption underneath)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    with open(path, "r+b", buffering=0) as f:
        f.write(secrets.token_bytes(max(size, 1)))
        os.fsync(f.fileno())
    path.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_key(directory: Path, name: str, data: bytes, aad: bytes,
               store: KeyStore | None) -> None:
    if store is None:
        write_secret(directory / name, data)
        shred(directory / (name + WRAPPED))  # a stale wrapped file would win on load
    else:
        write_secret(directory / (name + WRAPPED), store.wrap(data, aad))
        shred(directory / name)


def _read_key(directory: Path, name: str, aad: bytes, size: int,
              store: KeyStore | None) -> bytes:
    wrapped = directory / (name + WRAPPED)
    if not wrapped.exists():
        return _read(directory / name, size)
    if store is None:
        raise KeyFileError(f"{wrapped} is wrapped: configure the key store (--keystore)")
    try:
        data = store.unwrap(_read(wrapped), aad)
    except UnwrapError:
        raise KeyFileError(
            f"{wrapped} does not unwrap with this key store (other store or tampered)"
        ) from None
    if len(data) != size:
        raise KeyFileError(f"{wrapped} has the wrong size")
    return data


def wrap_dir(directory: Path, store: KeyStore) -> list[str]:
    """Convert a plaintext keys directory: wrap each secret file, check that the wrapped
    file unwraps to the same bytes, then shred the plaintext. Returns the files converted."""
    done = []
    for name, aad, size in _secret_roles():
        plain = directory / name
        if not plain.exists():
            continue
        data = _read(plain, size)
        wrapped = directory / (name + WRAPPED)
        write_secret(wrapped, store.wrap(data, aad))
        if _read_key(directory, name, aad, size, store) != data:
            raise KeyFileError(f"{wrapped} did not unwrap to {plain}; plaintext kept")
        shred(plain)
        done.append(name)
    return done


def plaintext_secrets(directory: Path) -> list[Path]:
    """Secret files of ``directory`` that rest in plaintext."""
    return [directory / name for name, _aad, _size in _secret_roles()
            if (directory / name).exists()]


def check_permissions(directory: Path) -> None:
    """Refuse, as ssh does, a keys directory others may write or plaintext secrets others may
    read (``.wrapped`` files are sealed by the key store and are not checked)."""
    mode = directory.stat().st_mode & 0o777
    if mode & 0o022:
        raise KeyFileError(
            f"keys directory {directory} is writable by others (mode {mode:04o}); chmod 700 it"
        )
    for name, _aad, _size in _secret_roles():
        path = directory / name
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            what = "readable" if mode & 0o044 else "writable"
            raise KeyFileError(f"{path} is {what} by others (mode {mode:04o}); chmod 600 it")


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


def init_keys(
    directory: Path,
    validity_s: int = DEFAULT_VALIDITY_S,
    force: bool = False,
    store: KeyStore | None = None,
) -> None:
    """Make a root key, one gateway key per KEM with its certificate, and an auth secret.
    With ``store`` the secret files are written only wrapped (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    held = (directory / ROOT_KEY).exists() or (directory / (ROOT_KEY + WRAPPED)).exists()
    if held and not force:
        raise KeyFileError(f"{directory} already holds keys (use --force to replace them)")
    root = RootKey.generate()
    _write_key(directory, ROOT_KEY, root.seed_bytes(), ROOT_AAD, store)
    write_public(directory / ROOT_PUB, root.public_bytes())
    now = int(time.time())
    for kem in KEMS.values():
        key = kem.generate()
        _write_key(directory, _kem_file(kem, "key"), key.seed_bytes(), lt_aad(kem), store)
        cert = root.certify(kem, key.public_bytes, now - CERT_BACKDATE_S, now + validity_s)
        write_public(directory / _kem_file(kem, "cert"), cert.to_bytes())
    _write_key(directory, AUTH_SECRET, secrets.token_bytes(32), AUTH_AAD, store)
    _write_key(directory, TICKET_SECRET, secrets.token_bytes(32), TICKET_AAD, store)


def load_root_public(path: Path) -> bytes:
    """A pinned root public key: a keys directory or the root.pub file itself."""
    if path.is_dir():
        path = path / ROOT_PUB
    return _read(path, 1952)


def load_auth_secret(directory: Path, store: KeyStore | None = None) -> bytes:
    return _read_key(directory, AUTH_SECRET, AUTH_AAD, 32, store)


def load_ticket_key(directory: Path, store: KeyStore | None = None) -> bytes | None:
    """The resumption-ticket key every node of a deployment shares (None if absent)."""
    if not (directory / TICKET_SECRET).exists() and not (
        directory / (TICKET_SECRET + WRAPPED)
    ).exists():
        return None
    return _read_key(directory, TICKET_SECRET, TICKET_AAD, 32, store)


def load_credentials(
    directory: Path, store: KeyStore | None = None
) -> dict[KemId, GatewayCredential]:
    """Gateway credentials; ``.wrapped`` key files are unwrapped with ``store``."""
    creds: dict[KemId, GatewayCredential] = {}
    for kem in KEMS.values():
        key_path = directory / _kem_file(kem, "key")
        if not key_path.exists() and not key_path.with_name(key_path.name + WRAPPED).exists():
            continue
        seed = _read_key(directory, key_path.name, lt_aad(kem), 32, store)
        cert_path = directory / _kem_file(kem, "cert")
        try:
            cert = GatewayCertificate.from_bytes(_read(cert_path))
        except CertificateError as exc:
            raise KeyFileError(f"{cert_path}: {exc} (run plexigate keys init/rotate)") from None
        try:
            creds[kem.kem_id] = GatewayCredential(kem.from_seed(seed), cert)
        except ValueError as exc:
            raise KeyFileError(f"{key_path}: key and certificate do not match") from exc
    if not creds:
        raise KeyFileError(f"no gateway keys in {directory} (run `plexigate keys init`)")
    return creds
