"""`plexigate vault split` / `vault recover`: Shamir-split recovery secrets in share files.

    plexigate vault split (--secret-file F | --generate N) --out DIR [-t 3] [-n 5]
    plexigate vault recover --out F SHARE...

An optional passphrase (``$PLEXI_VAULT_PASSPHRASE`` or ``--passphrase-file``) also encrypts
share values at rest. The secret itself is never printed. With ``--audit-dir`` (and a key
store, see ``--store``), each split/recover is recorded in the audit log before returning.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from crypto import vault
from crypto.audit import AuditLog
from crypto.fileio import atomic_write, private_dir
from crypto.keystore import KeyStoreError
from gateway.commands._keyopts import add_store_args, open_store

PASS_ENV = "PLEXI_VAULT_PASSPHRASE"  # noqa: S105 - variable name


def _passphrase(args: argparse.Namespace) -> bytes:
    if args.passphrase_file:
        return Path(args.passphrase_file).read_bytes().strip()
    return os.environ.get(PASS_ENV, "").encode()


def _audit(args: argparse.Namespace) -> AuditLog | None:
    if not args.audit_dir:
        return None
    _store, log = open_store(args)
    return log


def _split(args: argparse.Namespace) -> int:
    if args.secret_file:
        secret = Path(args.secret_file).read_bytes()
    else:
        secret = secrets.token_bytes(args.generate)
    log = _audit(args)
    try:
        files = vault.split(secret, args.threshold, args.count, passphrase=_passphrase(args))
        out = private_dir(Path(args.out))
        for i, data in enumerate(files, start=1):
            atomic_write(out / f"share-{i}.pxv", data)
        if log is not None:
            log.append("vault-split", key="vault", detail={
                "vault": files[0][8:24].hex(), "t": args.threshold, "n": args.count})
        if args.generate and args.secret_out:
            atomic_write(Path(args.secret_out), secret)
    finally:
        if log is not None:
            log.close()
    print(f"{args.count} shares (threshold {args.threshold}) written to {out}")
    return 0


def _recover(args: argparse.Namespace) -> int:
    if Path(args.out).exists() and not args.force:
        print(f"error: {args.out} exists; refusing to overwrite it (use --force)")
        return 1
    named = [(p, Path(p).read_bytes()) for p in args.shares]
    log = _audit(args)
    try:
        try:
            secret = vault.recover(named, passphrase=_passphrase(args))
        except vault.VaultError as exc:
            if log is not None:
                log.append("vault-recover", "error", key="vault",
                           detail={"error": type(exc).__name__})
            raise
        if log is not None:
            log.append("vault-recover", key="vault", detail={"shares": len(named)})
        atomic_write(Path(args.out), secret)
    finally:
        if log is not None:
            log.close()
    print(f"secret recovered from {len(named)} shares into {args.out} (0600)")
    return 0


def _guard(fn: object) -> object:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)  # type: ignore[operator, no-any-return]
        except (KeyStoreError, ValueError, OSError) as exc:
            print(f"vault: {exc}", file=sys.stderr)
            return 1
    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("vault", help="Shamir vault: split / recover a secret")
    sub = parser.add_subparsers(dest="vault_command", metavar="ACTION")
    sp = sub.add_parser("split", help="split a secret into share files")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--secret-file", help="file holding the secret")
    src.add_argument("--generate", type=int, metavar="N", help="generate an N-byte secret")
    sp.add_argument("--secret-out", help="with --generate: also write the secret here (0600)")
    sp.add_argument("--out", required=True, help="directory for share-<i>.pxv files")
    sp.add_argument("-t", "--threshold", type=int, default=3)
    sp.add_argument("-n", "--count", type=int, default=5)
    sp.add_argument("--passphrase-file", help=f"share passphrase file (else ${PASS_ENV})")
    add_store_args(sp, required=False)
    sp.set_defaults(func=_guard(_split))
    rp = sub.add_parser("recover", help="recover a secret from share files")
    rp.add_argument("shares", nargs="+", help="share files")
    rp.add_argument("--out", required=True, help="where to write the secret (0600)")
    rp.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    rp.add_argument("--passphrase-file", help=f"share passphrase file (else ${PASS_ENV})")
    add_store_args(rp, required=False)
    rp.set_defaults(func=_guard(_recover))

    def _help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)
