"""Key-store options of the gateway's own commands (`serve`, `keys init`, `keys wrap`).

Not a command (no ``register``). Builds on :mod:`gateway.commands._keyopts`; adds the
gateway defaults: the software store lives in ``<keys>/keystore`` and the audit log in
``<keys>/audit`` unless ``--store-dir`` / ``--audit-dir`` say otherwise. Secrets only from
``$PLEXI_HSM_PIN`` / ``$PLEXI_KEYSTORE_PASSPHRASE`` or ``--store-secret-file``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from crypto.audit import AuditLog
from crypto.keystore import KeyStore, KeyStoreError
from crypto.rotation import MAX_AES_GCM_USES, RotationPolicy
from gateway.commands import _argtypes
from gateway.commands._keyopts import add_store_args, open_store
from gateway.keyruntime import DEFAULT_ROTATION_INTERVAL_S, STORAGE_KEY_FILE, KeyRuntime

SOFT_STORE_DIR = "keystore"
AUDIT_DIR = "audit"
log = logging.getLogger("plexigate.serve")


def add_gateway_store_args(p: argparse.ArgumentParser) -> None:
    """--keystore soft|pkcs11 (absent: plaintext development mode) and its options."""
    add_store_args(p, required=False)


def add_rotation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rotation-interval", type=_argtypes.positive_float,
                   default=DEFAULT_ROTATION_INTERVAL_S,
                   help="seconds between rotation checks of the storage key (default 60)")
    p.add_argument("--storage-key",
                   help=f"storage key state file (default <keys>/{STORAGE_KEY_FILE})")
    p.add_argument("--storage-key-max-age", type=_argtypes.positive_float, default=7 * 86400.0,
                   help="rotate the storage key after this many seconds (default 7 days)")
    p.add_argument("--storage-key-max-uses", type=_argtypes.int_range(1, MAX_AES_GCM_USES),
                   default=MAX_AES_GCM_USES,
                   help="rotate after this many seals (<= 2^32)")


def open_gateway_store(
    args: argparse.Namespace, keys_dir: Path, *, create: bool = False
) -> tuple[KeyStore, AuditLog | None]:
    """The configured store (audited) with the gateway's defaults for its paths."""
    if args.store == "soft" and not args.store_dir:
        args.store_dir = str(keys_dir / SOFT_STORE_DIR)
    if not args.audit_dir:
        args.audit_dir = str(keys_dir / AUDIT_DIR)
    if create:
        args.create_store = True
    return open_store(args)


def open_runtime(
    args: argparse.Namespace, keys_dir: Path, store: KeyStore, audit: AuditLog | None
) -> KeyRuntime:
    policy = RotationPolicy(max_age=args.storage_key_max_age,
                            max_uses=args.storage_key_max_uses)
    return KeyRuntime.open(
        keys_dir, store, audit,
        storage_path=Path(args.storage_key) if args.storage_key else None,
        policy=policy, interval=args.rotation_interval,
    )


def open_for_serve(
    args: argparse.Namespace, keys_dir: Path
) -> tuple[KeyStore | None, AuditLog | None]:
    """`serve`: the store and audit log, or (None, None) in development mode."""
    if getattr(args, "store", None) is None:
        log.warning("no --keystore: gateway secrets are plaintext files in %s "
                    "(development mode)", keys_dir)
        return None, None
    return open_gateway_store(args, keys_dir)


def close_quietly(store: KeyStore | None, audit: AuditLog | None) -> None:
    """Release what open_for_serve opened, after a failed startup."""
    try:
        if audit is not None:
            audit.close()
    except KeyStoreError:
        pass
    if store is not None:
        store.close()


def load_auth_secret_for(args: argparse.Namespace, keys_dir: Path) -> bytes:
    """The keys directory's HS256 secret, unwrapped through the store if --keystore."""
    from gateway.keyfiles import load_auth_secret

    if getattr(args, "store", None) is None:
        return load_auth_secret(keys_dir)
    store, audit = open_gateway_store(args, keys_dir)
    try:
        return load_auth_secret(keys_dir, store)
    finally:
        close_quietly(store, audit)
