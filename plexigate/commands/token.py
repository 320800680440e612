"""`plexigate token`: issue a development token.

HS256 with the keys directory's secret (default) or ``--hs256-secret-file``; EdDSA with
``--ed25519-key FILE`` (a PEM private key, or the raw 32-byte seed). The gateway verifies
EdDSA tokens with ``serve --jwt-ed25519-public-key`` (the matching public key).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from crypto.keystore import KeyStoreError
from gateway.authconfig import AuthConfigError, load_hs256_secret
from gateway.commands import _gwkeys
from gateway.keyfiles import KeyFileError
from plexigate.devtoken import MAX_TTL_S, check_ttl, check_user, issue_token, parse_grants


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("token", help="issue a development JWT (HS256 or EdDSA)")
    p.add_argument("--keys", default=".plexigate/keys")
    p.add_argument(
        "--user", required=True, help="token subject: 1-128 of letters, digits, _ . @ : + -"
    )
    p.add_argument(
        "--grant",
        action="append",
        default=[],
        help="CHANNEL=ACTIONS, actions from sub,pub,hist; CHANNEL may be "
        "'ns:*' or '*' (repeatable; default '*=sub,pub,hist')",
    )
    p.add_argument(
        "--ttl", type=int, default=3600, help=f"seconds until expiry (1..{MAX_TTL_S})"
    )
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--ed25519-key", metavar="FILE", help="sign with EdDSA: PEM private key or 32-byte seed"
    )
    key.add_argument("--hs256-secret-file", metavar="FILE", help="sign HS256 with this secret")
    _gwkeys.add_gateway_store_args(p)  # a wrapped keys dir: unwrap auth-hs256.key.wrapped
    p.set_defaults(func=run)


def load_ed25519_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ValueError(f"{path}: not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return key
    if len(data) != 32:
        raise ValueError(f"{path}: expected PEM or a 32-byte seed")
    return Ed25519PrivateKey.from_private_bytes(data)


def run(args: argparse.Namespace) -> int:
    try:
        check_user(args.user)
        grants = parse_grants(args.grant) if args.grant else {"*": ["sub", "pub", "hist"]}
        check_ttl(args.ttl)
        if args.ed25519_key:
            ed = load_ed25519_private_key(Path(args.ed25519_key))
            print(issue_token(args.user, grants, args.ttl, ed25519_key=ed))
            return 0
        if args.hs256_secret_file:
            secret = load_hs256_secret(Path(args.hs256_secret_file))
        else:
            secret = _gwkeys.load_auth_secret_for(args, Path(args.keys))
    except (ValueError, KeyFileError, AuthConfigError, KeyStoreError) as exc:
        print(f"error: {exc}")
        return 1
    print(issue_token(args.user, grants, args.ttl, hs256_secret=secret))
    return 0
