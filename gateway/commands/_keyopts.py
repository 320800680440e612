"""Shared options of the key-management commands: which key store, which audit log.

Not a command (no ``register``). Secrets come from the environment or a file only:
``$PLEXI_HSM_PIN`` (pkcs11) / ``$PLEXI_KEYSTORE_PASSPHRASE`` (soft), or ``--store-secret-file``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from crypto.audit import AuditLog
from crypto.audited import AuditedKeyStore
from crypto.keyconfig import KeyStoreConfig, open_audit_log, open_keystore
from crypto.keystore import KeyStore

SECRET_ENVS = {"soft": "PLEXI_KEYSTORE_PASSPHRASE", "pkcs11": "PLEXI_HSM_PIN"}


def add_store_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--keystore", "--store", dest="store", choices=("soft", "pkcs11"),
                   default="soft" if required else None,
                   help="key store kind" + (" (default soft)" if required else ""))
    p.add_argument("--store-dir", help="software key store directory")
    p.add_argument("--token", default="plexi", help="PKCS#11 token label (SOFTHSM2_CONF set)")
    p.add_argument("--library", default="/usr/lib/softhsm/libsofthsm2.so")
    p.add_argument("--store-secret-file", help="file with the PIN/passphrase (else the env var)")
    p.add_argument("--create-store", action="store_true",
                   help="create the software store / token master keys if missing")
    p.add_argument("--audit-dir", help="audit log directory (audit.log, audit.pub, audit.key)")


def open_store(args: argparse.Namespace) -> tuple[KeyStore, AuditLog | None]:
    kind: Literal["soft", "pkcs11"] = "pkcs11" if args.store == "pkcs11" else "soft"
    config = KeyStoreConfig(
        kind=kind,
        path=Path(args.store_dir) if args.store_dir else None,
        token_label=args.token,
        library=args.library,
        secret_env=SECRET_ENVS[kind],
        secret_file=Path(args.store_secret_file) if args.store_secret_file else None,
        create=bool(args.create_store),
    )
    store = open_keystore(config)
    if not args.audit_dir:
        return store, None
    log = open_audit_log(store, Path(args.audit_dir))
    return AuditedKeyStore(store, log), log
