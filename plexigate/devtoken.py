"""Development token issuer (the application's auth service does this in production)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.auth import USER_RE
from gateway.ops import CHANNEL_RE

ALL_GRANTS: Mapping[str, Sequence[str]] = {"*": ("sub", "pub", "hist")}
# USER_RE and CHANNEL_RE are the gateway's own rules (imported, so they cannot drift): a token
# the gateway would refuse is refused here, when it is issued, with a reason.
NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,63}:\*")  # "ns:*" grants every channel ns:...
MAX_TTL_S = 365 * 24 * 3600


def check_user(user: str) -> str:
    """``user`` if the gateway accepts it as a token subject, else ValueError."""
    if not USER_RE.fullmatch(user):
        raise ValueError(
            f"user {user!r} is not 1-128 characters of letters, digits and _ . @ : + -"
        )
    return user


def check_ttl(ttl_s: int) -> int:
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise ValueError(f"--ttl must be 1..{MAX_TTL_S} seconds (one year), got {ttl_s}")
    return ttl_s


def check_channel_pattern(pattern: str) -> str:
    """A grant's channel: ``*``, ``ns:*`` or a channel name the gateway accepts."""
    if pattern == "*" or NAMESPACE_RE.fullmatch(pattern) or CHANNEL_RE.fullmatch(pattern):
        return pattern
    raise ValueError(
        f"grant channel {pattern!r} is not '*', 'ns:*' or a channel name "
        "(1-64 letters, digits, _ . : -)"
    )


def issue_token(
    user: str,
    grants: Mapping[str, Sequence[str]] = ALL_GRANTS,
    ttl_s: int = 3600,
    *,
    hs256_secret: bytes | None = None,
    ed25519_key: Ed25519PrivateKey | None = None,
    now: float | None = None,
) -> str:
    t = int(now if now is not None else time.time())
    claims = {
        "sub": user,
        "iat": t,
        "exp": t + ttl_s,
        "chans": {k: list(v) for k, v in grants.items()},
    }
    if ed25519_key is not None:
        return jwt.encode(claims, ed25519_key, algorithm="EdDSA")
    if hs256_secret is None:
        raise ValueError("need an HS256 secret or an Ed25519 key")
    return jwt.encode(claims, hs256_secret, algorithm="HS256")


def parse_grants(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["general=sub,pub", "team:*=sub"]`` -> ``{"general": ["sub","pub"], ...}``."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        channel, sep, actions = spec.partition("=")
        if not sep or not channel:
            raise ValueError(f"grant {spec!r} is not CHANNEL=ACTIONS")
        check_channel_pattern(channel)
        acts = [a.strip() for a in actions.split(",") if a.strip()]
        bad = [a for a in acts if a not in ("sub", "pub", "hist")]
        if bad or not acts:
            raise ValueError(f"grant {spec!r}: actions are sub, pub, hist")
        out[channel] = acts
    return out
