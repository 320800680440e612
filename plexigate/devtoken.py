"""Development token issuer (the application's auth service does this in production)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALL_GRANTS: Mapping[str, Sequence[str]] = {"*": ("sub", "pub", "hist")}


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
        acts = [a.strip() for a in actions.split(",") if a.strip()]
        bad = [a for a in acts if a not in ("sub", "pub", "hist")]
        if bad or not acts:
            raise ValueError(f"grant {spec!r}: actions are sub, pub, hist")
        out[channel] = acts
    return out
