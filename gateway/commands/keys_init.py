"""`plexigate keys init DIR` / `plexigate keys wrap DIR`: the gateway's keys directory.

    plexigate keys init DIR [--keystore soft|pkcs11 ...]   root key, gateway keys, certs, auth
    plexigate keys wrap DIR --keystore soft|pkcs11 ...     convert a plaintext dir to wrapped

With ``--keystore`` every secret file rests only wrapped by the store (``*.wrapped``); the
storage key state (``storage-key.json``) and the audit log (``<DIR>/audit`` unless
``--audit-dir``) are created too. Without it, ``keys init`` writes plaintext 0600 files:
the development mode. Exit codes: 0 ok, 1 error, 3 HSM unavailable (retry).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crypto.keystore import HsmUnavailable, KeyStoreError
from crypto.rotation import RotatingKey
from gateway.commands import _argtypes, keys
from gateway.commands._gwkeys import add_gateway_store_args, open_gateway_store
from gateway.keyfiles import KeyFileError, init_keys, plaintext_secrets, wrap_dir
from gateway.keyruntime import STORAGE_KEY_FILE, STORAGE_KEY_ID


def _with_store(args: argparse.Namespace, action: str) -> int:
    directory = Path(args.dir)
    try:
        if args.store is None:
            if action == "wrap":
                print("keys wrap: --keystore soft|pkcs11 is required", file=sys.stderr)
                return 1
            init_keys(directory, validity_s=args.days * 86400, force=args.force)
            print(f"keys written to {directory} UNWRAPPED (development mode: plaintext 0600 "
                  "files; use --keystore in production); clients pin "
                  f"{directory / 'root.pub'}")
            return 0
        if action == "wrap" and not directory.is_dir():
            print(f"keys wrap: {directory} is not a keys directory", file=sys.stderr)
            return 1
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        store, audit = open_gateway_store(args, directory, create=True)
        try:
            if action == "init":
                init_keys(directory, validity_s=args.days * 86400, force=args.force, store=store)
                print(f"keys written to {directory}, secrets wrapped by the {args.store} "
                      f"store; clients pin {directory / 'root.pub'}")
            else:
                done = wrap_dir(directory, store)
                print(f"wrapped {len(done)} file(s) in {directory}: "
                      + (", ".join(done) or "nothing to do"))
            storage = directory / STORAGE_KEY_FILE
            if not storage.exists():
                rk = RotatingKey.create(store, storage, STORAGE_KEY_ID, audit=audit)
                print(f"storage key {rk.key_id} v{rk.active_version} in {storage}")
            left = plaintext_secrets(directory)
            if left:
                print("warning: plaintext secrets remain: " + ", ".join(map(str, left)),
                      file=sys.stderr)
                return 1
        finally:
            if audit is not None:
                audit.close()
            store.close()
    except HsmUnavailable as exc:
        print(f"keys {action}: {exc} (retry later)", file=sys.stderr)
        return 3
    except (KeyFileError, KeyStoreError, ValueError, OSError) as exc:
        print(f"keys {action}: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_init(args: argparse.Namespace) -> int:
    return _with_store(args, "init")


def _run_wrap(args: argparse.Namespace) -> int:
    return _with_store(args, "wrap")


def _add(ksub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = ksub.add_parser("init", help="create root key, gateway keys and certificates")
    p.add_argument("dir", help="keys directory (created, mode 0700)")
    p.add_argument("--days", type=_argtypes.int_range(1, 100 * 365), default=365,
                   help="certificate validity in days (1..36500)")
    p.add_argument("--force", action="store_true", help="replace existing keys")
    add_gateway_store_args(p)
    p.set_defaults(func=_run_init)


def _add_wrap(ksub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = ksub.add_parser("wrap", help="wrap a plaintext keys directory with a key store")
    p.add_argument("dir", help="keys directory made by `keys init` without --keystore")
    add_gateway_store_args(p)
    p.set_defaults(func=_run_wrap)


if _add not in keys.EXTRA:
    keys.EXTRA.insert(0, _add)
if _add_wrap not in keys.EXTRA:
    keys.EXTRA.insert(1, _add_wrap)
