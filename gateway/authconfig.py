"""Token verification keys and security limits from the command line (`plexigate serve`).

Key files:

* ``--jwt-hs256-secret-file FILE`` (repeatable): the HS256 secret. A file of printable
  text is used stripped of surrounding whitespace (``echo secret > file`` works); anything
  else is used as raw bytes. At least 32 bytes (RFC 7518 section 3.2).
* ``--jwt-ed25519-public-key FILE`` (repeatable): an Ed25519 public key for EdDSA tokens,
  PEM (``-----BEGIN PUBLIC KEY-----``) or the raw 32 bytes.

When neither option is given the keys directory's development secret (auth-hs256.key) is
used, as before; when either is given, only the named keys are trusted.
Errors name the file, never its content.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from crypto.session import SessionLimits
from gateway.auth import TokenVerifier
from gateway.commands import _argtypes
from gateway.config import GatewayLimits

MIN_HS256_SECRET = 32
_LIMITS = GatewayLimits()
_SESSION = SessionLimits()


class AuthConfigError(ValueError):
    """A key file is missing or malformed (the message names the file, never its bytes)."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuthConfigError(f"cannot read {path}: {exc.strerror}") from None


def load_hs256_secret(path: Path) -> bytes:
    data = _read(path)
    if data.isascii() and all(0x20 <= b < 0x7F or b in b"\t\r\n" for b in data):
        data = data.strip()
    if len(data) < MIN_HS256_SECRET:
        raise AuthConfigError(f"{path}: HS256 secret shorter than {MIN_HS256_SECRET} bytes")
    return data


def load_ed25519_public_key(path: Path) -> Ed25519PublicKey:
    data = _read(path)
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(data)
        except ValueError:
            raise AuthConfigError(f"{path}: not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise AuthConfigError(f"{path}: not an Ed25519 public key")
        return key
    if len(data) != 32:
        raise AuthConfigError(f"{path}: expected PEM or 32 raw bytes")
    return Ed25519PublicKey.from_public_bytes(data)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("client authentication and per-connection limits")
    g.add_argument(
        "--jwt-hs256-secret-file",
        action="append",
        default=[],
        metavar="FILE",
        help="HS256 token secret (repeatable; replaces the keys directory's dev secret)",
    )
    g.add_argument(
        "--jwt-ed25519-public-key",
        action="append",
        default=[],
        metavar="FILE",
        help="Ed25519 public key for EdDSA tokens, PEM or raw 32 bytes (repeatable)",
    )
    g.add_argument(
        "--max-channels",
        type=_argtypes.positive_int,
        default=_LIMITS.max_channels_per_connection,
        help="channels one connection may join (default %(default)s)",
    )
    g.add_argument(
        "--max-connections-per-user",
        type=_argtypes.positive_int,
        default=_LIMITS.max_connections_per_user,
        help="concurrent authenticated connections per user (default %(default)s)",
    )
    g.add_argument(
        "--rekey-after-messages",
        type=_argtypes.int_range(1, _SESSION.max_seq),
        default=_SESSION.rekey_after_records,
        help="records sent in one epoch before an in-band rekey (default %(default)s)",
    )
    g.add_argument(
        "--rekey-after-seconds",
        type=_argtypes.positive_float,
        default=_SESSION.rekey_after_ms / 1000,
        help="seconds in one epoch before an in-band rekey (default %(default)s)",
    )
    g.add_argument(
        "--max-skew-ms",
        type=_argtypes.non_negative_int,
        default=_SESSION.max_skew_ms,
        help="allowed record timestamp skew in ms (default %(default)s)",
    )


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise AuthConfigError(f"{name} must be positive")


def apply_limits(args: argparse.Namespace, limits: GatewayLimits) -> GatewayLimits:
    _positive("--max-channels", args.max_channels)
    _positive("--max-connections-per-user", args.max_connections_per_user)
    return replace(
        limits,
        max_channels_per_connection=args.max_channels,
        max_connections_per_user=args.max_connections_per_user,
    )


def session_limits(args: argparse.Namespace, base: SessionLimits = _SESSION) -> SessionLimits:
    _positive("--rekey-after-messages", args.rekey_after_messages)
    _positive("--rekey-after-seconds", args.rekey_after_seconds)
    if args.max_skew_ms < 0:
        raise AuthConfigError("--max-skew-ms must not be negative")
    if args.rekey_after_messages > base.max_seq:
        raise AuthConfigError(f"--rekey-after-messages must be at most {base.max_seq}")
    return replace(
        base,
        rekey_after_records=args.rekey_after_messages,
        rekey_after_ms=max(1, round(args.rekey_after_seconds * 1000)),
        max_skew_ms=args.max_skew_ms,
    )


def build_verifier(args: argparse.Namespace, dev_secret: Callable[[], bytes]) -> TokenVerifier:
    """Verifier from the --jwt-* files, else from the keys directory's dev secret."""
    secrets = tuple(load_hs256_secret(Path(f)) for f in args.jwt_hs256_secret_file)
    ed_keys = tuple(load_ed25519_public_key(Path(f)) for f in args.jwt_ed25519_public_key)
    if not secrets and not ed_keys:
        secrets = (dev_secret(),)
    return TokenVerifier(hs256_secrets=secrets, ed25519_keys=ed_keys)
