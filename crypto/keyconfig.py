"""Opening the configured key store: one entry point for the gateway.

``open_keystore(KeyStoreConfig(...))`` returns a :class:`KeyStore` (software or PKCS#11),
wrapped in :class:`AuditedKeyStore` when an audit log is given. Secrets (PIN, passphrase) are
read from an environment variable or a file named in the config, never from the config
itself or the command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from crypto.audit import AuditLog
from crypto.audited import AuditedKeyStore
from crypto.breaker import BreakerPolicy, CircuitBreaker
from crypto.keystore import KeyStore, KeyStoreError


@dataclass(frozen=True, slots=True)
class KeyStoreConfig:
    kind: Literal["soft", "pkcs11"] = "soft"
    # soft: directory of the store; secret = passphrase
    path: Path | None = None
    # pkcs11: token label, library; secret = user PIN
    token_label: str = "plexi"  # noqa: S105 - a label, not a secret
    library: str = "/usr/lib/softhsm/libsofthsm2.so"
    prefix: str = "plexi"
    secret_env: str = "PLEXI_HSM_PIN"  # noqa: S105 - the variable name
    secret_file: Path | None = None
    create: bool = False
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)


def read_secret(env: str, file: Path | None) -> str:
    """A PIN or passphrase from ``file`` (first line) if given, else from ``$env``."""
    value = Path(file).read_text().strip() if file is not None else os.environ.get(env, "")
    if not value:
        raise KeyStoreError(f"no key-store secret: set ${env} or give a secret file")
    return value


def open_keystore(config: KeyStoreConfig, audit: AuditLog | None = None) -> KeyStore:
    secret = read_secret(config.secret_env, config.secret_file)
    store: KeyStore
    if config.kind == "soft":
        if config.path is None:
            raise KeyStoreError("the software key store needs a path")
        from crypto.softstore import SoftKeyStore

        if config.create and not (Path(config.path) / "store.json").exists():
            store = SoftKeyStore.create(config.path, secret.encode())
        else:
            store = SoftKeyStore.open(config.path, secret.encode())
    elif config.kind == "pkcs11":
        from crypto.pkcs11store import Pkcs11KeyStore

        store = Pkcs11KeyStore(
            config.token_label, secret, library=config.library, prefix=config.prefix,
            breaker=CircuitBreaker(config.breaker), create=config.create,
        )
    else:
        raise KeyStoreError(f"unknown key store kind {config.kind!r}")
    return AuditedKeyStore(store, audit) if audit is not None else store


def open_audit_log(store: KeyStore, directory: Path, **kw: object) -> AuditLog:
    """The audit log in ``directory``: ``audit.log`` (+ ``.ckpt``), ``audit.pub`` (the
    verifying key, public) and ``audit.key`` (the signing seed, wrapped by ``store``).
    The audit key is created on first use."""
    from crypto.audit import AuditSigner
    from crypto.fileio import atomic_write, private_dir

    directory = private_dir(Path(directory))
    key_path = directory / "audit.key"
    aad = b"plexi/audit-key/v1"
    if key_path.exists():
        signer = AuditSigner(store.unwrap(key_path.read_bytes(), aad))
    else:
        signer, seed = AuditSigner.generate()
        atomic_write(key_path, store.wrap(seed, aad))
        atomic_write(directory / "audit.pub", signer.public_bytes(), mode=0o644)
    return AuditLog(directory / "audit.log", signer, **kw)  # type: ignore[arg-type]
